"""Alert rules on a rolling window of an organization's jobs: the rules (pure), their
evaluation loop, the service the API and the dashboard read through, and the API schemas.
"""
