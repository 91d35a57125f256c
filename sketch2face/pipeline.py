"""The inference pipeline: sketch -> normalise -> generate -> (upscale x2) -> (restore) -> image.

    from sketch2face import Sketch2Face
    model = Sketch2Face.from_pretrained()              # the checkout's weights/, else the Hub model
    face = model("drawing.png")                         # PIL.Image, RGB, at least the drawing's size
    result = model.generate(drawing, enhance=True)      # image + notes + result.restoration
    result.restoration.applied, result.restoration.reason  # did GFPGAN run, and if not, why

One instance is safe to share between threads: it holds no per-request state, and the
generator runs in eval mode under ``torch.inference_mode``.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from . import preprocess
from .errors import GFPGAN_PATH_ENV, ModelLoadError, Sketch2FaceError
from .networks import FaceUpscaler, UNetGenerator
from .tensors import image_to_tensor, tensor_to_image

logger = logging.getLogger(__name__)

# The weights/ folder of the checkout this package runs from (an editable install or a clone);
# an installed wheel has none and falls back to the Hub model.
DEFAULT_WEIGHTS_DIR = Path(__file__).resolve().parent.parent / "weights"
# Placeholder: this repo id is not published yet (see the README); set SKETCH2FACE_MODEL to yours.
DEFAULT_HUB_MODEL = "sketch2face/sketch2face-pix2pix"
MODEL_ENV = "SKETCH2FACE_MODEL"
UPSCALER_SUBFOLDER = "upscaler"  # the x2 upscaler's config.json + model.safetensors, beside the generator's
# An optional second generator for shaded sketches (pencil, charcoal, photos); the main one then
# draws line drawings only (preprocess.is_line_drawing tells them apart).
SHADED_SKETCHES_SUBFOLDER = "shaded_sketches"
HUB_ETAG_TIMEOUT_S = 5  # fail fast rather than hang a Space's start-up on an unreachable Hub


@dataclass(frozen=True)
class Restoration:
    """Whether GFPGAN was asked for, whether it ran, and if it was skipped, why (one line)."""

    requested: bool = False
    applied: bool = False
    reason: str | None = None  # set exactly when requested and not applied

    def as_dict(self) -> dict[str, Any]:
        return {"requested": self.requested, "applied": self.applied, "reason": self.reason}


@dataclass
class GenerationResult:
    image: Image.Image  # RGB, the input's aspect ratio, the face where it was drawn
    sketch: Image.Image  # the normalised sketch the generator saw (canvas framing)
    restoration: Restoration = field(default_factory=Restoration)
    notes: list[str] = field(default_factory=list)  # one-line messages for the user

    @property
    def enhanced(self) -> bool:
        """GFPGAN ran (same as ``restoration.applied``)."""
        return self.restoration.applied


def _looks_like_repo_id(name: str) -> bool:
    parts = name.split("/")
    return len(parts) == 2 and all(parts) and not name.startswith((".", "/", "~"))


def resolve_model(model: str | os.PathLike | None = None) -> Path | str:
    """Where the weights come from: a local folder (Path) or a Hub repo id (str).

    ``model`` defaults to $SKETCH2FACE_MODEL, then the checkout's ``weights/`` folder when the
    package runs from one, then DEFAULT_HUB_MODEL. Raises ModelLoadError for anything else.
    """
    name = model or os.environ.get(MODEL_ENV)
    if not name:
        return DEFAULT_WEIGHTS_DIR if (DEFAULT_WEIGHTS_DIR / "model.safetensors").is_file() else DEFAULT_HUB_MODEL
    path = Path(str(name)).expanduser()
    if path.is_dir():
        return path
    if _looks_like_repo_id(str(name)):
        return str(name)
    raise ModelLoadError(f"Model {str(name)!r} is neither a folder nor a Hugging Face repo id (user/name).")


def load_generator(model: str | os.PathLike | None = None, device: str = "cpu") -> UNetGenerator:
    """Load from a local folder (config.json + model.safetensors) or a Hub repo id (see resolve_model).

    Raises ModelLoadError with a one-line reason (offline, missing, not safetensors, ...).
    """
    source = resolve_model(model)
    if isinstance(source, str):
        hint = (f"There is no {DEFAULT_WEIGHTS_DIR} either: pass a weights folder or a Hub repo id, or set {MODEL_ENV}."
                if source == DEFAULT_HUB_MODEL and not (model or os.environ.get(MODEL_ENV)) else None)
        return _load_from_hub(UNetGenerator, source, "", hint).to(device).eval()
    return _load_from_folder(UNetGenerator, source, "the generator").to(device).eval()


def load_upscaler(model: str | os.PathLike | None = None, device: str = "cpu") -> FaceUpscaler | None:
    """The x2 upscaler kept beside the generator (its ``upscaler/`` subfolder), or None when the
    weights have none. Raises ModelLoadError when it is there but can't be loaded."""
    hint = "Sketch2Face.from_pretrained(..., upscale=False) runs without it (faces enlarged by resizing)."
    return _load_beside_generator(FaceUpscaler, model, UPSCALER_SUBFOLDER, "the upscaler", device, hint)


def load_shaded_sketch_generator(model: str | os.PathLike | None = None, device: str = "cpu") -> UNetGenerator | None:
    """The generator for shaded sketches kept beside the main one (its ``shaded_sketches/``
    subfolder), or None when the weights have one generator for every drawing. Raises
    ModelLoadError when it is there but can't be loaded."""
    return _load_beside_generator(UNetGenerator, model, SHADED_SKETCHES_SUBFOLDER, "the shaded-sketch generator", device)


def _load_beside_generator(network_class, model, subfolder: str, what: str, device: str, hint: str | None = None):
    """An optional network in the weights' ``subfolder``: None when the folder or Hub repo has none."""
    source = resolve_model(model)
    if isinstance(source, str):
        network = _load_from_hub(network_class, source, subfolder, hint, optional=True)
    elif (source / subfolder).is_dir():
        network = _load_from_folder(network_class, source / subfolder, what)
    else:
        network = None
    return network.to(device).eval() if network is not None else None


def _load_from_folder(network_class, path: Path, what: str):
    if not (path / "model.safetensors").is_file():
        raise ModelLoadError(f"{path} has no model.safetensors (only safetensors weights are loaded).")
    try:
        # huggingface_hub prints a progress line to stdout; keep stdout for our results.
        with contextlib.redirect_stdout(sys.stderr):
            return network_class.from_pretrained(path, strict=True)  # no half-random layers
    except Exception as error:  # corrupt file, wrong config, ...
        raise ModelLoadError(f"Could not load {what} from {path}: {error}") from None


def _load_from_hub(network_class, repo_id: str, subfolder: str = "", hint: str | None = None, optional: bool = False):
    """Exactly config.json + model.safetensors from the repo (or its subfolder): the mixin alone
    would fall back to a pickle. ``optional``: None when the repo has no such files."""
    from huggingface_hub import hf_hub_download, is_offline_mode
    from huggingface_hub.errors import LocalEntryNotFoundError, RemoteEntryNotFoundError

    hint = hint or f"Unset {MODEL_ENV} to use the bundled weights/."
    try:
        hf_hub_download(repo_id, "config.json", subfolder=subfolder or None, etag_timeout=HUB_ETAG_TIMEOUT_S)
        weights = hf_hub_download(repo_id, "model.safetensors", subfolder=subfolder or None, etag_timeout=HUB_ETAG_TIMEOUT_S)
        with contextlib.redirect_stdout(sys.stderr):
            return network_class.from_pretrained(Path(weights).parent, strict=True)
    except LocalEntryNotFoundError:  # (a subclass of EntryNotFoundError: caught first)
        reason = "HF_HUB_OFFLINE is set and it is not in the local cache" if is_offline_mode() else "the Hub is unreachable (offline?) and it is not in the local cache"
    except RemoteEntryNotFoundError:
        if optional:
            return None
        reason = f"the repo has no {subfolder + '/' if subfolder else ''}config.json + model.safetensors"
    except Exception as error:  # repo not found, gated, network errors of every kind
        reason = f"{type(error).__name__}: {str(error).splitlines()[0] if str(error) else 'no details'}"
    raise ModelLoadError(
        f"Could not load model '{repo_id}{'/' + subfolder if subfolder else ''}' from the Hugging Face Hub: {reason}. {hint}"
    )


def _check_interchangeable(generator: UNetGenerator, shaded_sketch_generator: UNetGenerator) -> None:
    """Both generators must take the same canvas and give the same face size: the rest of the
    pipeline (upscaler, uncanvas) does not know which one ran."""
    for name in ("in_channels", "canvas_size", "output_scale", "upsample"):
        main, shaded = getattr(generator, name, None), getattr(shaded_sketch_generator, name, None)
        if main != shaded:
            raise ModelLoadError(f"The shaded-sketch generator's {name} is {shaded!r}, the main generator's {main!r}: "
                                 f"the two must match (re-export {SHADED_SKETCHES_SUBFOLDER}/ from the same architecture).")


def skip_reason(error: Exception) -> str:
    """The restorer's one-line reason, plus the fix when the reason does not already name it."""
    reason = str(error).strip()
    if GFPGAN_PATH_ENV not in reason:
        reason += f" To use a local copy of GFPGANv1.4.pth instead, set {GFPGAN_PATH_ENV}."
    return reason


class Sketch2Face:
    """Sketch-to-face generator(s), x2 upscaler (when the weights have one) and optional GFPGAN restoration.

    With a ``shaded_sketch_generator``, shaded sketches go to it and line drawings to ``generator``
    (``preprocess.is_line_drawing``): the two kinds were best served by different fine-tunes
    (docs/training.md, "A generator for each kind of drawing")."""

    def __init__(self, generator: UNetGenerator, device: str = "cpu", restorer: Any | None = None,
                 upscaler: FaceUpscaler | None = None, shift_average: bool = True,
                 shaded_sketch_generator: UNetGenerator | None = None):
        from .fastpath import LINE_DRAWING_SHIFTS, SHADED_SKETCH_SHIFTS, ShiftAveraged, optimise_for_inference

        if shaded_sketch_generator is not None:
            _check_interchangeable(generator, shaded_sketch_generator)
        self.generator = generator.to(device).eval()
        self.shaded_sketch_generator = (shaded_sketch_generator.to(device).eval()
                                        if shaded_sketch_generator is not None else None)
        # Only a transposed decoder paints the lattice checkerboard that shift averaging removes.
        self.shift_average = shift_average and getattr(generator, "upsample", "transposed") == "transposed"
        # BatchNorm folded into the convolutions, channels-last: same outputs, ~0.78x the time.
        line_network = optimise_for_inference(self.generator)
        shaded_network = (optimise_for_inference(self.shaded_sketch_generator)
                          if self.shaded_sketch_generator is not None else line_network)
        self._line_drawing_generator, self._shaded_sketch_generator = line_network, shaded_network
        if self.shift_average:
            self._line_drawing_generator = ShiftAveraged(line_network, LINE_DRAWING_SHIFTS)
            self._shaded_sketch_generator = ShiftAveraged(shaded_network, SHADED_SKETCH_SHIFTS)
        # A full-size generator already paints at 2x; only a canvas-size one needs the upscaler.
        full_size = getattr(generator, "output_scale", 1) > 1
        self.upscaler = upscaler.to(device).eval() if upscaler is not None and not full_size else None
        self._serving_upscaler = optimise_for_inference(self.upscaler) if self.upscaler is not None else None
        self.device = torch.device(device)
        self._restorer = restorer
        self._restorer_lock = threading.Lock()

    @classmethod
    def from_pretrained(cls, model: str | os.PathLike | None = None, device: str = "cpu", restorer: Any | None = None,
                        upscale: bool = True, shift_average: bool = True) -> "Sketch2Face":
        """``upscale=False``: do not load the weights' x2 upscaler (faces are then enlarged by resizing).
        ``shift_average=False``: one generator pass instead of the mean over shifted copies of the
        drawing, which takes out most of the transposed decoder's grid: two (one pixel apart) for a
        shaded sketch, four (up to six pixels apart) for a line drawing (docs/training.md, "Shift
        averaging at serving time"). The weights' ``shaded_sketches/`` generator, when they have
        one, draws the shaded sketches."""
        generator = load_generator(model, device)
        shaded_sketch_generator = load_shaded_sketch_generator(model, device)
        upscaler = load_upscaler(model, device) if upscale and generator.output_scale == 1 else None
        return cls(generator, device=device, restorer=restorer, upscaler=upscaler, shift_average=shift_average,
                   shaded_sketch_generator=shaded_sketch_generator)

    # -- public API ----------------------------------------------------------------
    def __call__(self, image: Any, enhance: bool = False) -> Image.Image:
        return self.generate(image, enhance=enhance).image

    def generate(self, image: Any, enhance: bool = False, full_size: bool = True) -> GenerationResult:
        """Raises InputError (one-line, user-facing) for anything that is not a usable sketch.

        ``full_size``: the face comes back at least at the drawing's own size (512x640 from the
        Sketchpad), enlarged where it must be (:meth:`needs_enlarging`) by the upscaler when the
        weights have one, else by bicubic resizing. False:
        at the canvas's resolution (half that from the Sketchpad), quicker: the live preview."""
        sketch = preprocess.normalise(image)
        face = self.generate_canvas(sketch.canvas)
        upscaled = self.upscale(face) if full_size and self.needs_enlarging(sketch) else None
        notes = []
        if sketch.inverted:
            notes.append("Light lines on a dark background were detected and inverted.")
        if sketch.thinned:
            notes.append("Very thick strokes were thinned to a pen width the model knows.")
        restoration = Restoration()
        if enhance:
            try:
                face = self.restorer.restore(face, upscaled=upscaled)
                restoration = Restoration(requested=True, applied=True)
            except Sketch2FaceError as error:
                restoration = Restoration(requested=True, applied=False, reason=skip_reason(error))
                logger.warning("GFPGAN restoration skipped: %s", restoration.reason)
                notes.append(f"Face restoration skipped: {restoration.reason} Returned the unrestored face.")
        if not restoration.applied and upscaled is not None:
            face = upscaled
        canvas_scale = face.shape[1] / preprocess.CANVAS_SIZE[0]
        size = preprocess.output_size(sketch, canvas_scale, at_least_input=full_size)
        output = preprocess.uncanvas(face, sketch, size)
        sketch_image = Image.fromarray((sketch.canvas * 255).round().astype(np.uint8), mode="L")
        return GenerationResult(Image.fromarray(output, mode="RGB"), sketch_image, restoration, notes)

    def generate_canvas(self, canvas: np.ndarray) -> np.ndarray:
        """Canvas sketch (float32 H x W, 1 = paper) -> canvas face (uint8 H x W x 3)."""
        generator = self._line_drawing_generator if self.is_line_drawing(canvas) else self._shaded_sketch_generator
        with torch.inference_mode():
            return tensor_to_image(generator(image_to_tensor(canvas)[None].to(self.device)))

    def is_line_drawing(self, canvas: np.ndarray) -> bool:
        """Whether ``canvas`` takes the line-drawing path (checked only where the two paths differ)."""
        paths_differ = self._line_drawing_generator is not self._shaded_sketch_generator
        return paths_differ and preprocess.is_line_drawing(canvas)

    @staticmethod
    def needs_enlarging(sketch: preprocess.NormalisedSketch) -> bool:
        """Whether the canvas face has fewer pixels than the drawing (the Sketchpad's, say). A drawing
        smaller than the canvas framing gets at least its own size from the canvas face as it is:
        the x2 face, judged at that size, is further from photos (docs/upscaler.md, "small drawings keep the canvas face")."""
        return sketch.scale < 1.0

    def upscale(self, face: np.ndarray) -> np.ndarray | None:
        """Canvas face (uint8 H x W x 3) -> the same at 2H x 2W; None without an upscaler."""
        if self._serving_upscaler is None:
            return None
        with torch.inference_mode():
            return tensor_to_image(self._serving_upscaler(image_to_tensor(face)[None].to(self.device)))

    @property
    def restorer(self):
        """GFPGAN, built on first use so start-up stays fast."""
        if self._restorer is None:
            with self._restorer_lock:
                if self._restorer is None:
                    from .restore import FaceRestorer

                    self._restorer = FaceRestorer(device=str(self.device))
        return self._restorer
