"""What a run or a measurement happened on, for model cards and benchmark reports."""

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


def machine_description(device_type: str) -> str:
    """The CPU, and the GPU when training ran on one."""
    if device_type == "cuda":
        import torch

        return f"{torch.cuda.get_device_name()} GPU; {cpu_description()}"
    return cpu_description()
