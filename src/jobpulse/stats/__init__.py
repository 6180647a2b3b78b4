"""Figures of jobs: windows, buckets and histograms (pure), the reading of a window's figures,
and the loop that folds the stats deltas into the rollups.
"""
