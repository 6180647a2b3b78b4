"""Bulk actions: cancel, or re-send the callbacks of, every job a filter matches, in bounded
steps that make way for other changes.
"""
