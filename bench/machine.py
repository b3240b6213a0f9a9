"""Shared by the benchmarks: the machine's description and writing a table into a Markdown file."""

from __future__ import annotations

import os
import platform
import re
from pathlib import Path

import torch


def describe_machine() -> str:
    """One line: CPU model and cores, GPU (if any), torch and ONNX Runtime versions."""
    cpu = platform.machine()
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.is_file():
        match = re.search(r"^model name\s*:\s*(.+)$", cpuinfo.read_text(), re.MULTILINE)
        cpu = match.group(1).strip() if match else cpu
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no GPU"
    try:
        import onnxruntime

        ort = f"onnxruntime {onnxruntime.__version__} ({', '.join(_short_providers())})"
    except ImportError:
        ort = "no onnxruntime"
    return (
        f"{cpu}, {os.cpu_count()} cores ({torch.get_num_threads()} torch threads), {gpu}; "
        f"torch {torch.__version__}, {ort}"
    )


def _short_providers() -> list[str]:
    import onnxruntime

    return [p.removesuffix("ExecutionProvider") for p in onnxruntime.get_available_providers()]


def write_section(path: Path, name: str, text: str) -> None:
    """Put ``text`` between ``<!-- begin NAME -->`` / ``<!-- end NAME -->`` in ``path``,
    replacing what was there (appended at the end the first time)."""
    begin, end = f"<!-- begin {name} -->", f"<!-- end {name} -->"
    block = f"{begin}\n{text.strip()}\n{end}"
    old = path.read_text() if path.is_file() else "# Benchmarks\n"
    pattern = re.compile(re.escape(begin) + r".*?" + re.escape(end), re.DOTALL)
    if pattern.search(old):
        new = pattern.sub(lambda _: block, old)
    else:
        new = f"{old.rstrip()}\n\n{block}\n"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(new)
