"""The `jobpulse` command's entry point: the command line (jobpulse.cli) needs the server's
dependencies, which a worker's install (`pip install jobpulse`, the SDK alone) lacks; then
it says which extra to install instead of failing on an import.
"""

from __future__ import annotations

import importlib
import sys

#: What to install for the command line.
SERVER_EXTRA = "jobpulse[server]"


def main() -> None:
    """Run the command line, or explain that it needs the `server` extra."""
    try:
        cli = importlib.import_module("jobpulse.cli")
    except ModuleNotFoundError as missing:
        if (missing.name or "").startswith("jobpulse"):
            raise
        sys.stderr.write(
            f"error: the jobpulse command needs the server's dependencies ({missing.name} is "
            f"not installed): pip install '{SERVER_EXTRA}'. This install holds the Python SDK "
            "only (jobpulse.client).\n"
        )
        raise SystemExit(1) from None
    cli.main()
