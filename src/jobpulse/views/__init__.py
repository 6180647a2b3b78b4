"""Saved views: named filters of the jobs page per user, shareable in the organization."""
