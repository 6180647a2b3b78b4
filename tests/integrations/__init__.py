"""Executor integrations against real brokers, real workers and a real jobpulse."""
