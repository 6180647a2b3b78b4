"""Stored JSON values read back, whatever wrote them."""

from __future__ import annotations

import logging
from typing import Any

import orjson

from jobpulse import documents

logger = logging.getLogger("jobpulse.storage")


def load_json(text: str | bytes) -> Any:
    """A stored JSON value: orjson's fast path, and a lenient reader for the rows orjson
    refuses (NaN written before the JSON policy). A value neither can read is None, so that
    one bad row fails only what needs it, never a listing or a claim of many.
    """
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError:
        pass
    try:
        return documents.loads(text)
    except (ValueError, RecursionError):
        logger.warning("a stored JSON value cannot be read; it reads as null")
        return None
