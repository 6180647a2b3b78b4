"""The README's Python example runs as written, on each database, and says what it claims."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

README = Path(__file__).resolve().parents[2] / "README.md"


def test_readme_example_runs(database_url: str, tmp_path: Path) -> None:
    [example] = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.DOTALL)
    script = tmp_path / "example.py"
    script.write_text(example.replace("sqlite:///./jobpulse.db", database_url))
    done = subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    status, ttft, duration = lines[0].split()
    assert status == "completed"
    assert 0 <= int(ttft) <= int(duration)
    assert lines[1] == "invalid_transition completed running"
    assert lines[2:6] == [
        "None -> created applied",
        "created -> running applied",
        "running -> completed applied",
        "completed -> running rejected",
    ]
    assert lines[6].startswith("1 {")
