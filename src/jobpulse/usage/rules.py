"""The rules of LLM usage, pure: a call as recorded, how it adds to its job's totals, and the
history note of a call recorded after its job ended.

Costs are counted in picodollars (1e-12 USD), integers, so that a job's total is exactly the
sum of its calls in whatever order they arrive; the wire shows dollars.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Any

from jobpulse.domain import TERMINAL, Job, JobEvent

#: The token counts of a call, in the order they are shown.
TOKEN_KINDS = ("input_tokens", "output_tokens", "cache_read_tokens", "cache_write_tokens")
#: Picodollars in a dollar.
PICO = 10**12


class CostSource(enum.StrEnum):
    """Where a call's cost came from."""

    #: The caller said what the call cost.
    CALLER = "caller"
    #: The price table, when the call was recorded.
    PRICES = "prices"


@dataclass(frozen=True, slots=True)
class Call:
    """One LLM call of a job, as recorded."""

    id: str
    provider: str
    model: str
    recorded_at: datetime
    input_tokens: int = 0
    output_tokens: int = 0
    cache_read_tokens: int = 0
    cache_write_tokens: int = 0
    #: The cost in picodollars, None when unknown (never a guess).
    cost_pusd: int | None = None
    cost_source: CostSource | None = None
    ttft_ns: int | None = None
    duration_ns: int | None = None
    #: Recorded after its job had ended.
    late: bool = False

    @property
    def model_key(self) -> str:
        """`<provider>/<model>`, the key of the job's per-model totals."""
        return f"{self.provider}/{self.model}"

    def tokens(self) -> dict[str, int]:
        """The call's four token counts by kind."""
        return {kind: getattr(self, kind) for kind in TOKEN_KINDS}


def to_pusd(usd: Decimal | float) -> int:
    """Dollars as picodollars (rounded half to even past the twelfth decimal)."""
    exact = Decimal(repr(usd)) if isinstance(usd, float) else Decimal(usd)
    return int((exact * PICO).to_integral_value(ROUND_HALF_EVEN))


def to_usd(pusd: int | None) -> float | None:
    """Picodollars as dollars (None stays None)."""
    return None if pusd is None else pusd / PICO


def _empty() -> dict[str, Any]:
    return {"calls": 0, **dict.fromkeys(TOKEN_KINDS, 0), "cost_usd": 0.0}


def _added(part: Mapping[str, Any], call: Call) -> dict[str, Any]:
    """`part` (a job's totals, or one model's) with `call` added."""
    added: dict[str, Any] = {"calls": part["calls"] + 1}
    for kind in TOKEN_KINDS:
        added[kind] = part[kind] + getattr(call, kind)
    cost = part["cost_usd"]
    if cost is None or call.cost_pusd is None:  # unknown once any call's cost is
        added["cost_usd"] = None
    else:
        added["cost_usd"] = to_usd(round(cost * PICO) + call.cost_pusd)
    return added


def add_call(totals: Mapping[str, Any] | None, call: Call) -> dict[str, Any]:
    """A job's usage totals (`usage` of the job resource) with `call` added."""
    before = totals or {**_empty(), "by_model": {}}
    by_model = dict(before["by_model"])
    by_model[call.model_key] = _added(by_model.get(call.model_key) or _empty(), call)
    return _added(before, call) | {"by_model": by_model}


def is_late(job: Job) -> bool:
    """Whether a call recorded now comes after the job ended."""
    return job.status in TERMINAL


def late_note(job: Job, call: Call, actor: str | None) -> JobEvent:
    """The history event of a call recorded after its job ended (its status unchanged)."""
    return JobEvent(
        job_id=job.id,
        from_status=job.status,
        to_status=job.status,
        at=call.recorded_at,
        reason=f"LLM usage recorded after the job ended ({call.model_key})",
        actor=actor,
    )
