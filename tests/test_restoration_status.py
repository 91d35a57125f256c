"""GenerationResult.restoration: whether GFPGAN was asked for, whether it ran, and why not;
every skip is logged with its reason (the app's API and page read this, not the notes)."""

from __future__ import annotations

import logging
import socket

import numpy as np
import pytest

from sketch2face import Restoration, Sketch2Face, preprocess
from sketch2face.restore import FaceRestorer, RestorationUnavailable
from sketch2face.restore.weights import CHECKPOINT_NAME

from .drawings import drawing


class DoublingRestorer:
    """Stands in for GFPGAN: the canvas face at twice the size (what the real one returns)."""

    def restore(self, face: np.ndarray, upscaled: np.ndarray | None = None) -> np.ndarray:
        return np.repeat(np.repeat(face, 2, axis=0), 2, axis=1)


class UnavailableRestorer:
    def __init__(self, reason: str):
        self.reason = reason

    def restore(self, face: np.ndarray, upscaled: np.ndarray | None = None) -> np.ndarray:
        raise RestorationUnavailable(self.reason)


def test_without_enhance_restoration_is_not_requested(tiny_model_dir):
    result = Sketch2Face.from_pretrained(tiny_model_dir, restorer=UnavailableRestorer("never asked")).generate(drawing())
    assert result.restoration == Restoration(requested=False, applied=False, reason=None)
    assert not result.enhanced and result.notes == []


def test_applied_restoration_is_reported(tiny_model_dir):
    model = Sketch2Face.from_pretrained(tiny_model_dir, restorer=DoublingRestorer())
    plain = model.generate(drawing())
    result = model.generate(drawing(), enhance=True)
    assert result.restoration == Restoration(requested=True, applied=True, reason=None)
    assert result.enhanced
    # GFPGAN's face is 2x the canvas: the drawing comes back at that resolution, at least at its own size.
    assert result.image.size == preprocess.output_size(preprocess.normalise(drawing()), 2.0, at_least_input=True)
    assert result.image.size[0] > plain.image.size[0]


def test_a_skip_says_why_names_the_fix_and_is_logged(tiny_model_dir, caplog):
    model = Sketch2Face.from_pretrained(tiny_model_dir, restorer=UnavailableRestorer("The GFPGAN checkpoint /x.pth is not readable."))
    with caplog.at_level(logging.WARNING, logger="sketch2face.pipeline"):
        result = model.generate(drawing(), enhance=True)
    restoration = result.restoration
    assert restoration.requested and not restoration.applied
    assert restoration.reason.startswith("The GFPGAN checkpoint /x.pth is not readable.")
    assert "SKETCH2FACE_GFPGAN_PATH" in restoration.reason
    assert restoration.as_dict() == {"requested": True, "applied": False, "reason": restoration.reason}
    assert [record.getMessage() for record in caplog.records] == [f"GFPGAN restoration skipped: {restoration.reason}"]
    assert any(restoration.reason in note for note in result.notes)  # the CLI prints notes
    # The unrestored face is returned, unchanged.
    assert np.array_equal(np.asarray(result.image), np.asarray(model.generate(drawing()).image))


def test_a_reason_that_already_names_the_fix_is_not_extended(tiny_model_dir):
    reason = "The GFPGAN weights are not in /cache and offline mode is on; set SKETCH2FACE_GFPGAN_PATH to a local GFPGANv1.4.pth."
    result = Sketch2Face.from_pretrained(tiny_model_dir, restorer=UnavailableRestorer(reason)).generate(drawing(), enhance=True)
    assert result.restoration.reason == reason


def test_a_failed_download_is_logged_by_the_restorer_and_the_pipeline(tiny_model_dir, monkeypatch, tmp_path, caplog):
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_OFFLINE", False)  # what huggingface_hub read at import
    monkeypatch.delenv("SKETCH2FACE_GFPGAN_PATH", raising=False)
    monkeypatch.setenv("SKETCH2FACE_CACHE", str(tmp_path / "cache"))
    with socket.socket() as closed:  # a port nobody listens on: the connection is refused at once
        closed.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{closed.getsockname()[1]}/{CHECKPOINT_NAME}"
    model = Sketch2Face.from_pretrained(tiny_model_dir, restorer=FaceRestorer(url=url, alignment="fixed"))
    with caplog.at_level(logging.INFO, logger="sketch2face"):
        result = model.generate(drawing(), enhance=True)
    assert not result.restoration.applied and "Could not download" in result.restoration.reason
    messages = [record.getMessage() for record in caplog.records]
    assert any(message.startswith(f"Downloading {CHECKPOINT_NAME} (") for message in messages)
    failed = [message for message in messages if message.startswith(f"Downloading {CHECKPOINT_NAME} failed: ")]
    assert len(failed) == 1 and "Could not download" in failed[0]
    assert f"GFPGAN restoration skipped: {result.restoration.reason}" in messages
