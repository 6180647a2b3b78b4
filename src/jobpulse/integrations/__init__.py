"""Executor integrations: one call installs each (`jobpulse.integrations.celery.instrument`),
and the executor's own lifecycle is reported as jobs, off the tasks' path, by the shared
background reporter (reporter.py). Client side only: nothing here loads the server.
"""
