"""What a job page says after one of its actions: the result in words (never an error code),
said once, after the action's redirect (`?action=cancel&result=…`).
"""

from __future__ import annotations

from dataclasses import dataclass

from jobpulse.domain import TERMINAL, Job

#: The actions of a job page, as named in the result's address.
ACTIONS = ("cancel", "resend")


@dataclass(frozen=True, slots=True)
class Outcome:
    """A sentence, and whether it reports a success (`role=status`) or a refusal (`alert`)."""

    text: str
    ok: bool


def outcome(action: str | None, result: str | None, job: Job) -> Outcome | None:
    """The sentence for `action`'s `result` on `job` (None: no action was just taken)."""
    if action not in ACTIONS or not result:
        return None
    if result == "ok":
        if action == "cancel":
            return Outcome("The job was cancelled.", ok=True)
        text = (
            "The callback was queued to be sent again; its attempt appears under Callback attempts."
        )
        return Outcome(text, ok=True)
    if action == "cancel" and job.status in TERMINAL:  # invalid_transition, job_cancelled
        text = f"The job was not cancelled: it had already ended ({job.status.value})."
        return Outcome(text, ok=False)
    if action == "resend" and result == "not_found":
        return Outcome("Nothing was re-sent: this job has no callback to deliver yet.", ok=False)
    what = "cancelled" if action == "cancel" else "re-sent"
    return Outcome(f"Nothing was {what}; reload the page and try again.", ok=False)
