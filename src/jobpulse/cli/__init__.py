"""The `jobpulse` command: serve | worker | migrate | prune | keys | jobs | batches | demo.
Thin: the work is elsewhere. Each module adds its commands to the root's groups.
"""

from __future__ import annotations

from jobpulse.cli import keys, remote, server
from jobpulse.cli.root import app

__all__ = ["app", "keys", "main", "remote", "server"]


def main() -> None:
    """The console script."""
    app()
