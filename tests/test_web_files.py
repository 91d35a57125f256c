"""The web app's expiring files: result PNGs on disk, canvas uploads in memory."""

from __future__ import annotations

import os
import time

from PIL import Image

from sketch2face import web_files


def test_each_result_is_a_new_png_and_old_ones_are_pruned(tmp_path, monkeypatch):
    monkeypatch.setattr(web_files, "RESULTS_DIR", tmp_path / "results")
    monkeypatch.setattr(web_files, "_next_prune", 0.0)
    face = Image.new("RGB", (64, 80), "tan")
    first = web_files.save_result(face)
    second = web_files.save_result(face)  # the same face: its own file, never rewritten in place
    assert first != second
    assert Image.open(first).size == (64, 80) and Image.open(first).format == "PNG"

    stale = time.time() - web_files.RESULT_LIFETIME_S - 1
    os.utime(first, (stale, stale))
    monkeypatch.setattr(web_files, "_next_prune", 0.0)  # the next save scans the folder
    third = web_files.save_result(face)
    assert sorted(os.listdir(web_files.RESULTS_DIR)) == sorted(os.path.basename(path) for path in (second, third))


def test_canvas_uploads_nobody_reads_are_forgotten():
    now = [0.0]
    storage = web_files.ExpiringBlobStorage(lifetime_s=120.0, clock=lambda: now[0])
    storage["first stroke"] = "pixels"
    now[0] = 60.0
    storage["second stroke"] = "pixels"
    assert storage.pop("second stroke") == "pixels"  # read by its event
    now[0] = 121.0
    storage["third stroke"] = "pixels"
    assert list(storage) == ["third stroke"]  # the unread first stroke expired
    assert storage.get("first stroke") is None
