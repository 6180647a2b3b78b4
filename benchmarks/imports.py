"""What a worker pays to import the SDK: a fresh interpreter importing `jobpulse.client`,
next to one importing `httpx` alone (the SDK's HTTP client, its floor), taken in turns."""

from __future__ import annotations

import statistics
import subprocess
import sys
import time

ROUNDS = 9


def _started(module: str) -> float:
    began = time.perf_counter()
    subprocess.run([sys.executable, "-c", f"import {module}"], check=True)
    return time.perf_counter() - began


def measure() -> dict[str, float]:
    """Median seconds to start an interpreter and import each module, in turns."""
    times: dict[str, list[float]] = {"httpx": [], "jobpulse.client": []}
    for _ in range(ROUNDS):
        for module, taken in times.items():
            taken.append(_started(module))
    return {module: statistics.median(taken) for module, taken in times.items()}
