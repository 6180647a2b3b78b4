"""Scoped read-only tokens: a key mints a short-lived `jpt_…` token that reads one job, or
the jobs of a type and metadata, and their live streams, and nothing else (for a browser's
`EventSource`, which cannot send a key and must never hold one).
"""
