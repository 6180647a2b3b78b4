"""LLM batches followed as jobs: the rules (pure), the providers' answers (pure), the
providers' HTTP APIs and the poller that follows each batch to its end.
"""
