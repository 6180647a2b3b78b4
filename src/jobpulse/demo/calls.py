"""The demo's LLM calls: what an agent run or an LLM request reports of each model call it
makes (tokens, time to first token, duration), on models of the shipped price table and one
that the table does not know (its calls keep an unknown cost), so that the dashboard's usage
panels have something to show.
"""

from __future__ import annotations

import random
from typing import Any

#: (provider, model, how often it is picked): the last has no price.
MODELS = (
    ("anthropic", "claude-sonnet-4-5", 5),
    ("anthropic", "claude-haiku-4-5", 2),
    ("openai", "gpt-4.1-mini", 3),
    ("local", "llama-3.1-8b-instruct", 1),
)
#: The job types whose runs call models.
CALLING = frozenset({"agent_run", "llm_request"})


def llm_call(rng: random.Random, ttft_s: float) -> dict[str, Any]:
    """One call's record (the body of POST /v1/jobs/{id}/usage), plausible numbers."""
    provider, model, _weight = rng.choices(MODELS, weights=[m[2] for m in MODELS])[0]
    output = rng.randint(40, 1200)
    ttft_ns = int(rng.lognormvariate(0, 0.5) * ttft_s * 1e9)
    speed = rng.uniform(40, 160)  # output tokens a second
    cached = rng.random() < 0.5
    return {
        "call_id": f"msg_demo_{rng.getrandbits(64):016x}",  # a retried report counts once
        "provider": provider,
        "model": model,
        "input_tokens": rng.randint(200, 6000),
        "output_tokens": output,
        "cache_read_tokens": rng.randint(2000, 30000) if cached else 0,
        "cache_write_tokens": 0 if cached or provider != "anthropic" else rng.randint(0, 4000),
        "ttft_ns": ttft_ns,
        "duration_ns": ttft_ns + int(output / speed * 1e9),
    }
