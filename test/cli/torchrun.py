"""Run a ``vltseg`` command as torchrun runs it on a machine with N GPUs, here as N gloo
processes on the CPU: ``torchrun --standalone --nproc_per_node N --no-python vltseg ...``."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

BIN = Path(sys.executable).parent
LAUNCHER_VARIABLES = ("RANK", "LOCAL_RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT")


def torchrun(args: list[str], cwd: Path, processes: int = 2) -> subprocess.CompletedProcess:
    """``vltseg *args`` in ``processes`` processes (one torch thread each); returns the
    launcher's completed process (its output captured, never raising)."""
    env = {k: v for k, v in os.environ.items() if k not in LAUNCHER_VARIABLES}
    env["OMP_NUM_THREADS"] = "1"
    command = [str(BIN / "torchrun"), "--standalone", f"--nproc_per_node={processes}"]
    command += ["--no-python", str(BIN / "vltseg"), *args]
    return subprocess.run(
        command, cwd=cwd, env=env, capture_output=True, text=True, timeout=300, check=False
    )
