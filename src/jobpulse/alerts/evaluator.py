"""The evaluation loop: every JOBPULSE_ALERT_INTERVAL_S, each due rule's window is read from
the rollups (and a scan of the edges) and its episode opened or closed. The jobs' metrics
read the window's figures as /v1/stats does (`Figures`), the LLM usage metrics the calls
recorded in it (the usage rollups).

Every replica may run one: a claim makes a rule due a period later in the transaction that
takes it, so each rule is evaluated once a period, by one replica; an episode opens or
closes by compare-and-set, with its message in the same transaction (the webhook outbox:
signed, retried), so `alert.firing` and `alert.resolved` are each sent once.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import datetime, timedelta

from jobpulse.alerts.rules import EVALUATOR, FROM_USAGE, AlertRule, Evaluation, evaluate, read
from jobpulse.config import Settings
from jobpulse.domain import Actor
from jobpulse.jobs.manager import JobManager
from jobpulse.listing import JobFilter
from jobpulse.stats.figures import Figures
from jobpulse.stats.windows import Stats, Window
from jobpulse.usage.figures import UsageFigures

logger = logging.getLogger("jobpulse.alerts")

#: Rules one claim takes at most (a round claims again until none is due).
CLAIM_LIMIT = 100


class AlertEvaluator:
    """Evaluates the due rules of a manager's store."""

    def __init__(self, jobs: JobManager, interval_s: float, webhook: str | None = None) -> None:
        self._jobs = jobs
        self._figures = Figures(jobs)
        self._interval = timedelta(seconds=interval_s)
        #: Where `alert.firing` and `alert.resolved` go (recorded, not sent, without one).
        self._webhook = webhook

    @classmethod
    def from_settings(cls, jobs: JobManager, settings: Settings) -> AlertEvaluator:
        return cls(jobs, settings.alert_interval_s, settings.alert_webhook)

    async def evaluate_due(self) -> list[Evaluation]:
        """Evaluate every rule due now; the evaluations that opened or closed an episode.
        Safe to run on every replica at once. Rules of one round that watch the same jobs
        over the same window share one read of its figures.
        """
        changed = []
        read_once: dict[tuple[object, ...], Stats | UsageFigures] = {}
        while True:
            now = self._jobs.now()
            claimed = await self._jobs.store.claim_alert_rules(
                now, now + self._interval, CLAIM_LIMIT
            )
            for rule in claimed:
                try:
                    evaluation = await self._evaluate(rule, now, read_once)
                except Exception:  # one rule's failure (a busy read) leaves the others be
                    logger.exception("evaluating alert rule %s failed", rule.id)
                    continue
                if evaluation is not None:
                    changed.append(evaluation)
            if len(claimed) < CLAIM_LIMIT:
                return changed

    async def _evaluate(
        self,
        rule: AlertRule,
        now: datetime,
        read_once: dict[tuple[object, ...], Stats | UsageFigures],
    ) -> Evaluation | None:
        from_usage = rule.metric in FROM_USAGE
        key = (rule.organization_id, rule.job_type, rule.user_id, rule.model, rule.window_s)
        figures = read_once.get((*key, from_usage))
        if figures is None:
            figures = await self._read(rule, now, from_usage)
            read_once[(*key, from_usage)] = figures
        evaluation = evaluate(rule, read(rule, figures), now, self._webhook)
        if not await self._jobs.store.record_alert_evaluation(evaluation):
            return None
        if evaluation.message is not None:
            self._jobs.hooks.webhooks_queued()
        return evaluation

    async def _read(self, rule: AlertRule, now: datetime, from_usage: bool) -> Stats | UsageFigures:
        """The figures of the rule's window up to `now`: its jobs', or its LLM calls'."""
        window = Window(now - timedelta(seconds=rule.window_s), now)
        admin = Actor(rule.organization_id, EVALUATOR, is_admin=True)
        query = JobFilter(job_type=rule.job_type, user_id=rule.user_id, model=rule.model)
        if not from_usage:
            return await self._figures.stats(admin, query, window)
        async with self._jobs.reads.turn(rule.organization_id):
            return await self._jobs.store.usage_stats(admin, query, window)

    async def run(self) -> None:
        """Evaluate the due rules every interval until cancelled; a failed round is logged."""
        while True:
            try:
                for evaluation in await self.evaluate_due():
                    state = "firing" if evaluation.opened is not None else "resolved"
                    logger.info("alert rule %s: %s", evaluation.rule_id, state)
            except Exception:  # the database may be away for a while: keep going
                logger.exception("alert evaluation failed")
            await asyncio.sleep(self._interval.total_seconds())
