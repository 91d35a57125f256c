"""FaceRestorer: GFPGAN v1.4 for canvas-framed generator faces, coordinating the weights, the
network, the alignment and the paste back (each in its own module of this package)."""

from __future__ import annotations

import functools
import logging
import os
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from ..errors import RestorationUnavailable
from ..fastpath_gfpgan import FastGFPGAN
from ..landmarks import LandmarkDetector, five_points
from ..tensors import image_to_tensor, tensor_to_image
from .alignment import crop_to_template, face_to_template, landmarks_to_template, paste_back
from .network import load_gfpgan, stock_forward
from .weights import DownloadFailed, locate_checkpoint

logger = logging.getLogger(__name__)

ALIGN_ENV = "SKETCH2FACE_GFPGAN_ALIGN"  # "fixed": skip the optional dlib landmark refinement
RETRY_AFTER_S = 300.0  # after a failed download, later requests fail at once for this long

_landmarks_lock = threading.Lock()
_landmarks_state: list[LandmarkDetector | None] = []  # empty until tried; then [detector or None]


def _shared_landmarks() -> LandmarkDetector | None:
    """One LandmarkDetector per process (its model is 100 MB), or None without the dlib extra."""
    with _landmarks_lock:
        if not _landmarks_state:
            try:
                _landmarks_state.append(LandmarkDetector())
            except Exception as error:  # noqa: BLE001  optional extra: any failure means "fixed alignment"
                logger.info("Face landmarks unavailable (%s); using the fixed canvas alignment.", error)
                _landmarks_state.append(None)
        return _landmarks_state[0]


class FaceRestorer:
    """GFPGAN v1.4 for canvas-framed generator faces. Creating one is free; the weights load on
    the first :meth:`restore` (or :meth:`load`), once, shared by all threads.

    ``checkpoint``: a local GFPGANv1Clean checkpoint; default $SKETCH2FACE_GFPGAN_PATH, else the
    sha256-pinned official file, downloaded on first use (see :mod:`.weights`).
    ``optimized``: run :class:`~sketch2face.fastpath_gfpgan.FastGFPGAN` (default) or the stock forward.
    ``alignment``: "auto" refines the fixed canvas alignment with dlib landmarks when dlib is
    installed and finds a plausible face; "fixed" never does ($SKETCH2FACE_GFPGAN_ALIGN).

    Every failure raises RestorationUnavailable with a one-line reason.
    """

    def __init__(
        self,
        device: str | torch.device = "cpu",
        checkpoint: str | os.PathLike | None = None,
        url: str | None = None,
        optimized: bool = True,
        alignment: str | None = None,
    ):
        self.device = torch.device(device)
        self.checkpoint = Path(checkpoint).expanduser() if checkpoint is not None else None
        self.url = url
        self.optimized = optimized
        self.alignment = alignment or os.environ.get(ALIGN_ENV) or "auto"
        if self.alignment not in ("auto", "fixed"):
            raise RestorationUnavailable(f"The GFPGAN alignment must be 'auto' or 'fixed', not {self.alignment!r} (${ALIGN_ENV}).")
        self._forward = None  # image tensor -> restored tensor, set once by load()
        self._landmarks: LandmarkDetector | None = None
        self._lock = threading.Lock()
        self._failure: tuple[float, str] | None = None  # (when, why) the last download failed

    @classmethod
    def from_network(cls, network: nn.Module, optimized: bool = True, alignment: str | None = None) -> "FaceRestorer":
        """A restorer around an already loaded GFPGANv1Clean (benchmarks, experiments)."""
        restorer = cls(device=next(network.parameters()).device, optimized=optimized, alignment=alignment)
        restorer._landmarks = restorer._load_landmarks()
        restorer._forward = restorer._wrap(network)
        return restorer

    @property
    def loaded(self) -> bool:
        return self._forward is not None

    def load(self) -> None:
        """Find (or download) and load the weights now. Raises RestorationUnavailable."""
        if self._forward is not None:
            return
        with self._lock:
            if self._forward is not None:
                return
            if self._failure is not None and time.monotonic() - self._failure[0] < RETRY_AFTER_S:
                raise RestorationUnavailable(self._failure[1])
            try:
                path = locate_checkpoint(self.checkpoint, self.url)
            except DownloadFailed as error:
                self._failure = (time.monotonic(), str(error))
                raise
            started = time.monotonic()
            try:
                forward = self._wrap(load_gfpgan(path, self.device))
            except (ValueError, OSError) as error:
                raise RestorationUnavailable(f"Could not load the GFPGAN checkpoint {path}: {error}.") from None
            logger.info("GFPGAN loaded from %s in %.1f s.", path, time.monotonic() - started)
            self._landmarks = self._load_landmarks()
            self._forward = forward  # last: other threads see a fully loaded restorer
            self._failure = None

    def align(self, face: np.ndarray) -> tuple[np.ndarray, str]:
        """(face -> template 2x3 affine, "landmarks" or "fixed") for a canvas-framed face."""
        if self._landmarks is not None:
            landmarks = self._landmarks(face)
            if landmarks is not None:
                matrix = landmarks_to_template(five_points(landmarks), *face.shape[:2])
                if matrix is not None:
                    return matrix, "landmarks"
        return face_to_template(*face.shape[:2]), "fixed"

    def restore(self, face: np.ndarray, upscaled: np.ndarray | None = None) -> np.ndarray:
        """uint8 RGB (H, W, 3) in the canvas framing -> uint8 RGB (2H, 2W, 3), face restored.
        ``upscaled``: the same face at (2H, 2W) (the upscaler's), kept around the restored face."""
        face = self._check_face(face)
        self.load()
        matrix, _ = self.align(face)
        crop = crop_to_template(face, matrix)
        with torch.inference_mode():
            restored = tensor_to_image(self._forward(image_to_tensor(crop)[None].to(self.device)))
        return paste_back(face, restored, matrix, upscaled)

    @staticmethod
    def _check_face(face: Any) -> np.ndarray:
        face = np.ascontiguousarray(face)
        if face.dtype != np.uint8 or face.ndim != 3 or face.shape[2] != 3:
            raise RestorationUnavailable(f"Face restoration needs a uint8 RGB image, got {face.dtype} {face.shape}.")
        face_to_template(*face.shape[:2])  # raises for a framing it can't align
        return face

    def _wrap(self, network: nn.Module):
        # The fast module copies what it rearranges: only it stays alive, not both.
        return FastGFPGAN(network).eval() if self.optimized else functools.partial(stock_forward, network)

    def _load_landmarks(self) -> LandmarkDetector | None:
        return None if self.alignment == "fixed" else _shared_landmarks()
