"""Retention: pruning what ended long ago, once (`jobpulse prune`) or every hour (`serve`)."""
