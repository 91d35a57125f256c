"""Checkpoint files that a stopped run can always resume from."""

from __future__ import annotations

from pathlib import Path

import torch


def save_atomically(state: dict, path: Path) -> None:
    """``torch.save`` to a temporary file, then rename it over ``path``: a run killed while saving
    leaves the previous checkpoint, never a half-written one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_suffix(".tmp")
    torch.save(state, temporary)
    temporary.replace(path)
