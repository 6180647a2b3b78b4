"""`jobpulse prune` from a terminal: counts, a dry run, and a clear error for a bad age."""

from __future__ import annotations

from pathlib import Path

from tests.e2e.conftest import cli


def test_prune_counts_and_refuses_a_bad_age(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'jobpulse.db'}"
    cli("migrate", "--database-url", url)
    dry = cli("prune", "--older-than", "30d", "--dry-run", "--database-url", url)
    assert dry.stdout.strip() == "would remove: 0 jobs, 0 attempts, 0 messages"
    done = cli("prune", "--older-than", "12h", "--database-url", url)
    assert done.stdout.startswith("removed: 0 jobs")
    bad = cli("prune", "--older-than", "soon", "--database-url", url, check=False)
    assert bad.returncode == 2
    assert "write a number and d, h, m or s" in bad.stderr
