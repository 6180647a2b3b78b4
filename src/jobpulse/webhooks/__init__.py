"""Webhooks: what they say (payload), when they are retried (policy), how they are signed
(signing), where they may go (guard), and the worker that sends them (delivery).
"""
