"""How the dashboard writes LLM usage's numbers: token counts with thousands separators,
dollars to the millionth below a dollar, and "unknown" for a cost no one knows (never a
guess). Registered as Jinja filters of the pages and used by the charts' axes.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from jobpulse.usage.rules import TOKEN_KINDS

#: The smallest cost written as a number (below it: "< $0.000001").
SMALLEST_USD = 0.000001


def count(value: int | float | None) -> str:
    """12,345 (— without a value)."""
    return "—" if value is None else f"{value:,.0f}"


def usd(value: float | None) -> str:
    """$0.0315, $12.40, or "unknown" (None: a cost no price tells)."""
    if value is None:
        return "unknown"
    if value == 0:
        return "$0.00"
    if value < SMALLEST_USD:
        return f"< ${SMALLEST_USD:f}"
    if value >= 1:
        return f"${value:,.2f}"
    decimals = f"{value:.6f}".rstrip("0").partition(".")[2]
    return f"$0.{decimals.ljust(2, '0')}"


def tokens(totals: Mapping[str, Any] | None) -> int:
    """All the tokens of usage totals (a job's `usage`, one model's, a bucket's): input,
    output, cache read and cache write.
    """
    return sum(int((totals or {}).get(kind) or 0) for kind in TOKEN_KINDS)


def per_second(value: float | None) -> str:
    """Output tokens per second, to a tenth (— without a timed call)."""
    return "—" if value is None else f"{value:,.1f}"


#: The Jinja filters of the pages.
FILTERS = {"count": count, "usd": usd, "tokens": tokens, "per_second": per_second}
