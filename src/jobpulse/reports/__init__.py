"""Reports: many executors' reports of what their tasks did, applied in one request
(POST /v1/jobs/reports), each to the job its idempotency key names, made if missing.
"""
