"""Jobs: the `JobManager` (create, change, read) over a JobStore, with its input checks, the
steps a job reports and the webhooks its changes queue.
"""
