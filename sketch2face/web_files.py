"""Files the web app keeps while it serves: the faces it answers with (PNG files on disk) and
the canvas uploads Gradio holds in memory. Both expire, so a long-running server does not
fill its disk or memory.
"""

from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

from PIL import Image

RESULTS_DIR = Path(tempfile.gettempdir()) / "sketch2face-results"
RESULT_LIFETIME_S = 600  # Gradio copies a result into its cache as soon as the handler returns
PRUNE_EVERY_S = 60  # a scan of the folder per request would cost more as the load grows
_next_prune = 0.0


def save_result(image: Image.Image) -> str:
    """Write the face to a new PNG file and return its path.

    Returning a path, not a PIL image, matters under load: Gradio caches a PIL result under a
    hash of its bytes and rewrites that file in place, so two visitors with the same sketch
    could download a truncated file. A path is copied and renamed into the cache instead.
    """
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    handle, path = tempfile.mkstemp(suffix=".png", dir=RESULTS_DIR)
    with os.fdopen(handle, "wb") as file:
        image.save(file, format="PNG", compress_level=1)
    _prune_old_results()
    return path


def _prune_old_results() -> None:
    global _next_prune
    if time.monotonic() < _next_prune:
        return
    _next_prune = time.monotonic() + PRUNE_EVERY_S
    deadline = time.time() - RESULT_LIFETIME_S
    for old in RESULTS_DIR.glob("*.png"):
        try:
            if old.stat().st_mtime < deadline:
                old.unlink()
        except FileNotFoundError:  # another request pruned it first
            pass


class ExpiringBlobStorage(dict):
    """The Sketchpad's store of canvas uploads, keyed by upload id, forgetting old entries.

    A live canvas uploads its pixels on every change and Gradio keeps them until an event
    reads them, but some are never read: the ignored first change, and every change that
    trigger_mode="always_last" folds into a later request. Without this, each one would stay
    in memory for the life of the server.
    """

    def __init__(self, lifetime_s: float = 120.0, clock: Callable[[], float] = time.monotonic):
        super().__init__()
        self.lifetime_s = lifetime_s
        self.clock = clock
        self._stored_at: dict[Any, float] = {}

    def __setitem__(self, key: Any, value: Any) -> None:
        now = self.clock()
        for old_key, stored_at in list(self._stored_at.items()):
            if now - stored_at > self.lifetime_s:
                self.pop(old_key, None)
        self._stored_at.setdefault(key, now)
        super().__setitem__(key, value)

    def pop(self, key: Any, *default: Any) -> Any:
        self._stored_at.pop(key, None)
        return super().pop(key, *default)
