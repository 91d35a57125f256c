"""What the numbers were measured on: every benchmark report names the CPU."""

from __future__ import annotations

import os
import platform
from pathlib import Path


def cpu_description() -> str:
    """'<model name>, <n> cores' from /proc/cpuinfo, else what platform knows."""
    name = platform.processor() or platform.machine() or "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                name = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{name}, {os.cpu_count()} cores"
