"""Watching jobs and the service: the sweeper (deadlines, heartbeats, stuck jobs)."""
