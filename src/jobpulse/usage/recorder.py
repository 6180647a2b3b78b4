"""Recording LLM calls of jobs: checked, costed at the price table when the caller gives no
cost (fixed then: a later price never rewrites it), stored with the job's totals.
"""

from __future__ import annotations

import uuid

from jobpulse.config import Settings
from jobpulse.domain import Actor, check_duration
from jobpulse.errors import ValidationError
from jobpulse.jobs.checks import printable
from jobpulse.jobs.manager import JobManager
from jobpulse.listing import JobFilter
from jobpulse.metrics import DURATION_BUCKETS, TTFT_BUCKETS
from jobpulse.stats.windows import Window
from jobpulse.usage.figures import UsageFigures
from jobpulse.usage.prices import PriceTable, load_prices
from jobpulse.usage.rules import TOKEN_KINDS, Call, CostSource, to_pusd, to_usd

#: The most tokens one call may report, of each kind.
MAX_TOKENS = 10**12


class UsageRecorder:
    """Records the LLM calls of jobs at the prices of its table."""

    def __init__(self, jobs: JobManager, prices: PriceTable) -> None:
        self.jobs = jobs
        self.prices = prices

    @classmethod
    def from_settings(cls, jobs: JobManager, settings: Settings) -> UsageRecorder:
        """A recorder at the shipped prices and JOBPULSE_PRICES' (PriceFileError if bad)."""
        return cls(jobs, load_prices(settings.prices))

    async def record(
        self,
        actor: Actor,
        job_id: str,
        *,
        provider: str,
        model: str,
        input_tokens: int | None = None,
        output_tokens: int | None = None,
        cache_read_tokens: int | None = None,
        cache_write_tokens: int | None = None,
        cost_usd: float | None = None,
        ttft_ns: int | None = None,
        duration_ns: int | None = None,
        call_id: str | None = None,
    ) -> tuple[Call, bool]:
        """Record one call of the job (also when it has ended); the call as stored, and
        whether it is new (a call id recorded before gives its first record).
        """
        given = dict(
            zip(
                TOKEN_KINDS,
                (input_tokens, output_tokens, cache_read_tokens, cache_write_tokens),
                strict=True,
            )
        )
        tokens = _tokens(given)
        for name, text in (("provider", provider), ("model", model), ("call_id", call_id)):
            printable(name, text)
        provider = provider.lower()
        cost, source = self._cost(provider, model, tokens, cost_usd)
        call = Call(
            id=call_id or f"call-{uuid.uuid4()}",
            provider=provider,
            model=model,
            recorded_at=self.jobs.now(),
            input_tokens=tokens["input_tokens"],
            output_tokens=tokens["output_tokens"],
            cache_read_tokens=tokens["cache_read_tokens"],
            cache_write_tokens=tokens["cache_write_tokens"],
            cost_pusd=cost,
            cost_source=source,
            ttft_ns=check_duration("ttft_ns", ttft_ns),
            duration_ns=check_duration("duration_ns", duration_ns),
        )
        fresh = call_id is None
        _job, stored, new = await self.jobs.store.record_usage(actor, job_id, call, fresh)
        if new:
            spent = to_usd(stored.cost_pusd)
            self.jobs.metrics.llm_call(stored.provider, stored.model, stored.tokens(), spent)
        if new and stored.late:
            self.jobs.hooks.events_written()  # its history note
        return stored, new

    def _cost(
        self, provider: str, model: str, tokens: dict[str, int], cost_usd: float | None
    ) -> tuple[int | None, CostSource | None]:
        """The call's cost in picodollars and where it comes from: the caller's, else the
        price table's now, else unknown.
        """
        if cost_usd is not None:
            if isinstance(cost_usd, bool) or not 0 <= cost_usd <= 1_000_000:
                raise ValidationError("cost_usd must be a number of dollars, 0 to 1000000")
            return to_pusd(cost_usd), CostSource.CALLER
        cost = self.prices.cost_pusd(provider, model, tokens)
        return cost, None if cost is None else CostSource.PRICES

    async def figures(self, actor: Actor, query: JobFilter, window: Window) -> UsageFigures:
        """The LLM calls recorded in `window` of the actor's jobs under `query`, added up
        (in the turns long reads take, gate.py).
        """
        if not await self.jobs.store.has_usage(actor.organization_id, window):
            return UsageFigures(window, TTFT_BUCKETS, DURATION_BUCKETS)
        async with self.jobs.reads.turn(actor.organization_id):
            return await self.jobs.store.usage_stats(actor, query, window)

    async def list_calls(self, actor: Actor, job_id: str) -> list[Call]:
        """The job's calls, in the order they were recorded."""
        return await self.jobs.store.list_usage(actor, job_id)


def _tokens(given: dict[str, int | None]) -> dict[str, int]:
    if all(value is None for value in given.values()):
        raise ValidationError(f"give at least one token count ({', '.join(TOKEN_KINDS)})")
    tokens: dict[str, int] = {}
    for kind, value in given.items():
        if value is None:
            value = 0
        if isinstance(value, bool) or not isinstance(value, int):
            raise ValidationError(f"{kind} must be an integer")
        if not 0 <= value <= MAX_TOKENS:
            raise ValidationError(f"{kind} must be between 0 and {MAX_TOKENS}")
        tokens[kind] = value
    return tokens
