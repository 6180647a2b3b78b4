"""Persistence: the only package that imports SQLAlchemy. Its two drivers register what
each database spells its own way (see storage/dialects.py).
"""

from __future__ import annotations

from jobpulse.storage import feature_tables as _feature_tables
from jobpulse.storage.postgres import dialect as _postgres
from jobpulse.storage.sqlite import dialect as _sqlite

__all__: list[str] = []
del _feature_tables, _postgres, _sqlite
