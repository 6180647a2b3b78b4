"""LLM usage of jobs: each call's tokens and cost (fixed when recorded, from the caller or a
dated price table), the job's totals, and the figures (see docs/usage.md).
"""
