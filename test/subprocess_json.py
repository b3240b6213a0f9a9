"""Run a Python snippet in a fresh interpreter and read the JSON it prints last.

Tests that measure a process (peak memory, wall time) or must not share state with the test
process run their probe this way: the snippet prints one JSON object on its last stdout line.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any


def run_json(script: str, *args: str | Path, timeout: float = 300) -> Any:
    """Run ``python -c script *args``; raise on a non-zero exit, return its last line as JSON."""
    done = subprocess.run(
        [sys.executable, "-c", script, *map(str, args)],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=True,
    )
    return json.loads(done.stdout.strip().splitlines()[-1])
