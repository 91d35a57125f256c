"""Sketch normalisation: any image in, a canonical grey sketch for the generator out.

Training and serving both go through :func:`normalise`, so the model only ever sees sketches
framed, levelled and stroked the way this module makes them.

Coordinates: the *canvas* is the model's frame, ``CANVAS_SIZE`` = (width, height). It is the
CUFS framing (200x250, eyes level at y=127) scaled by 1.28. Every sketch is mapped onto it
by one similarity transform found from the drawing's ink extent; :func:`uncanvas` maps the
generated face back, so the output keeps the input's aspect ratio and the face stays where
it was drawn.
"""

from __future__ import annotations

import io
import math
import os
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from .errors import InputError

CANVAS_SIZE = (256, 320)  # (width, height) the generator works at
# Pupil centres of the CUFS framing (measured with dlib over the 88 train photos) x 1.28.
CANVAS_EYES = ((94.7, 162.8), (160.3, 163.0))
# Five facial points of a face framed on the canvas: the eyes above, then the nose tip and the
# mouth corners (dlib's points 30, 48 and 54, mean over the 300 training faces).
CANVAS_FACE_POINTS = (*CANVAS_EYES, (127.7, 197.6), (101.6, 235.8), (153.9, 235.7))
# The ink extent of every sketch is fitted into this box (x0, y0, x1, y1) of the canvas.
FRAME_BOX = (12.0, 12.0, 244.0, 308.0)

MAX_INPUT_PIXELS = 40_000_000  # refuse decompression bombs before decoding
# Bigger inputs are box-averaged down to this in 8-bit before any float copy: 40 MP as floats
# cost ~1.1 GB per request; the generator only sees a 256x320 canvas.
MAX_DECODED_PIXELS = 16_000_000
MIN_INPUT_SIDE = 32
MAX_OUTPUT_SIDE = 1024
MIN_OUTPUT_SIDE = 128

INK_THRESHOLD = 0.35  # darkness above which a pixel counts as drawn
THICK_STROKE_PX = 7.0  # line art with wider strokes (canvas pixels) gets thinned
TARGET_STROKE_PX = 3.0
# A line drawing (a doodle, an edge map) against a shaded sketch, by the share of the drawing's
# region in mid-greys and in any ink at all. Set on training data (docs/training.md): CUFS train
# sketches have 17-43% mid-greys, mouse doodles 5-17%.
LINE_DRAWING_MAX_MIDTONES = 0.14
LINE_DRAWING_MAX_INK = 0.35

Image.MAX_IMAGE_PIXELS = MAX_INPUT_PIXELS  # PIL's own guard, in case a path skips ours


@dataclass(frozen=True)
class NormalisedSketch:
    """A sketch on the canvas plus what is needed to map results back to the input frame."""

    canvas: np.ndarray  # float32 (H, W) in [0, 1], 1 = white paper, CANVAS_SIZE framing
    to_canvas: np.ndarray  # 2x3 affine, input pixel coords -> canvas coords
    input_size: tuple[int, int]  # (width, height) of the input
    inverted: bool  # the input was light lines on a dark ground
    thinned: bool  # very thick strokes were thinned

    @property
    def scale(self) -> float:
        return float(self.to_canvas[0, 0])


# --------------------------------------------------------------------------------------
# Loading: whatever arrives -> greyscale float on white paper
# --------------------------------------------------------------------------------------


def load_grayscale(source: Any) -> np.ndarray:
    """Read a path, bytes, file object, PIL image, array or Gradio sketchpad dict.

    Returns float32 (H, W) in [0, 1] with transparency flattened onto white.
    Raises InputError with a one-line reason for anything that is not a usable image.
    """
    if source is None:
        raise InputError("No image was given: draw a face first, or upload a sketch.")
    if isinstance(source, dict):
        return _load_sketchpad(source)
    if isinstance(source, np.ndarray):
        return _array_to_gray(source)
    if isinstance(source, Image.Image):
        return _pil_to_gray(source)
    if isinstance(source, (str, os.PathLike)):
        path = Path(source)
        if not path.is_file():
            raise InputError(f"No such file: {path.name}")
        if path.stat().st_size == 0:
            raise InputError("The uploaded file is empty: draw a face first, or upload a sketch.")
        with open(path, "rb") as handle:
            return _pil_to_gray(_open_image(handle))
    if isinstance(source, (bytes, bytearray)):
        if not source:
            raise InputError("The uploaded file is empty: draw a face first, or upload a sketch.")
        return _pil_to_gray(_open_image(io.BytesIO(source)))
    if hasattr(source, "read"):
        return _pil_to_gray(_open_image(source))
    raise InputError(f"Unsupported input type {type(source).__name__}: give an image file or array.")


def _open_image(handle) -> Image.Image:
    try:
        with warnings.catch_warnings():
            # PIL warns past MAX_IMAGE_PIXELS (our limit) and only refuses past twice that: refuse here.
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(handle)
        width, height = image.size  # from the header: nothing decoded yet
    except (UnidentifiedImageError, Image.DecompressionBombError, Image.DecompressionBombWarning) as error:
        if isinstance(error, (Image.DecompressionBombError, Image.DecompressionBombWarning)):
            raise InputError(
                f"The image is too large; the limit is {MAX_INPUT_PIXELS // 1_000_000} megapixels."
            ) from None
        raise InputError("The file is not an image we can read (use PNG, JPEG, WebP, GIF or BMP).") from None
    except OSError as error:
        raise InputError(f"The image file could not be read ({error}).") from None
    _check_size(width, height)
    try:
        image.seek(0)  # animated GIF/WebP/APNG: the first frame
        factor = _shrink_factor(width, height)
        if image.format == "JPEG" and factor > 1:
            # libjpeg decodes at 1/2, 1/4 or 1/8 scale: the full-size image is never in memory.
            image.draft(None, (math.ceil(width / factor), math.ceil(height / factor)))
        image.load()
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError):
        raise InputError("The image file is damaged or truncated: save it again and re-upload.") from None
    return image


def _check_size(width: int, height: int) -> None:
    if width * height > MAX_INPUT_PIXELS:
        raise InputError(
            f"The image is too large ({width}x{height} pixels); the limit is "
            f"{MAX_INPUT_PIXELS // 1_000_000} megapixels. Please downscale it."
        )
    if min(width, height) < MIN_INPUT_SIDE:
        raise InputError(
            f"The image is too small ({width}x{height} pixels); it needs at least "
            f"{MIN_INPUT_SIDE}x{MIN_INPUT_SIDE}."
        )


def _pil_to_gray(image: Image.Image) -> np.ndarray:
    _check_size(*image.size)
    try:
        image = ImageOps.exif_transpose(image)
    except Exception:  # a broken EXIF block must not cost the user the drawing
        pass
    sixteen_bit = image.mode.startswith("I;16")
    image = _shrink_large(image)
    mode = image.mode
    if mode in ("I;16", "I;16L", "I;16B", "I;16N", "I", "F"):
        values = np.asarray(image, dtype=np.float32)
        top = 65535.0 if sixteen_bit or values.max() > 255 else 255.0
        return np.clip(values / top, 0.0, 1.0)
    if mode == "P":
        image = image.convert("RGBA")
    elif mode in ("LA", "PA", "La", "RGBa"):
        image = image.convert("RGBA")
    elif mode not in ("RGBA", "RGB", "L"):
        image = image.convert("RGB")  # CMYK, YCbCr, LAB, HSV, 1 ...
    return _array_to_gray(np.asarray(image))


def _shrink_factor(width: int, height: int) -> int:
    """Integer box-averaging factor that brings the image within MAX_DECODED_PIXELS."""
    factor = math.ceil(math.sqrt(width * height / MAX_DECODED_PIXELS))
    return max(1, min(factor, min(width, height) // MIN_INPUT_SIDE))


def _shrink_large(image: Image.Image) -> Image.Image:
    """Box-average a very large image down in a compact PIL mode (8-bit grey, or 32-bit int
    for 16-bit scans). Transparency is flattened onto white first, as _array_to_gray would."""
    factor = _shrink_factor(*image.size)
    if factor <= 1:
        return image
    if image.mode.startswith("I;16"):
        image = image.convert("I")
    elif image.mode in ("RGBA", "LA", "PA", "La", "RGBa") or "transparency" in image.info:
        with_alpha = image.convert("LA")
        paper = Image.new("L", image.size, 255)
        image = Image.composite(with_alpha.getchannel("L"), paper, with_alpha.getchannel("A"))
    elif image.mode not in ("L", "I", "F"):
        image = image.convert("L")  # same luma weights as _array_to_gray
    return image.reduce(factor)


def _array_to_gray(array: np.ndarray) -> np.ndarray:
    array = np.asarray(array)
    if array.ndim == 3 and array.shape[2] == 1:
        array = array[..., 0]
    if array.ndim not in (2, 3) or (array.ndim == 3 and array.shape[2] not in (3, 4)):
        raise InputError(f"Expected a greyscale, RGB or RGBA image, got an array of shape {array.shape}.")
    _check_size(array.shape[1], array.shape[0])
    if array.dtype == np.uint8:
        values = array.astype(np.float32) / 255.0
    elif array.dtype == np.uint16:
        values = array.astype(np.float32) / 65535.0
    elif array.dtype == bool:
        values = array.astype(np.float32)
    else:
        values = array.astype(np.float32)
        if values.size and np.nanmax(values) > 1.0:
            values = values / 255.0
        values = np.nan_to_num(values, nan=1.0)
    values = np.clip(values, 0.0, 1.0)
    if values.ndim == 2:
        return values
    rgb = values[..., :3]
    gray = rgb @ np.array([0.299, 0.587, 0.114], dtype=np.float32)
    if values.shape[2] == 4:  # transparent means paper, not black
        alpha = values[..., 3]
        gray = gray * alpha + (1.0 - alpha)
    return gray.astype(np.float32)


def _load_sketchpad(value: dict) -> np.ndarray:
    """Gradio Sketchpad/ImageEditor value: {'background', 'layers', 'composite'}."""
    composite = value.get("composite")
    if composite is not None:
        return load_grayscale(composite)
    layers = [layer for layer in (value.get("layers") or []) if layer is not None]
    background = value.get("background")
    if background is None and not layers:
        raise InputError("Draw a face first: the canvas is empty.")
    base = load_grayscale(background) if background is not None else None
    for layer in layers:
        if isinstance(layer, (str, os.PathLike)):
            with open(layer, "rb") as handle:  # through _open_image: size-checked before decoding
                layer = np.asarray(_open_image(handle).convert("RGBA"))
        ink = load_grayscale(layer)
        base = ink if base is None or base.shape != ink.shape else np.minimum(base, ink)
    return base


# --------------------------------------------------------------------------------------
# Normalising: polarity, levels, stroke width, framing
# --------------------------------------------------------------------------------------


def normalise(source: Any) -> NormalisedSketch:
    """Turn any supported input into a canonical canvas sketch (see module docstring)."""
    gray = source if _is_gray_float(source) else load_grayscale(source)
    height, width = gray.shape
    inverted = _is_light_on_dark(gray)
    if inverted:
        gray = 1.0 - gray
    gray = _stretch_levels(gray)
    to_canvas = framing_transform(ink_mask(gray))
    canvas = warp_to_canvas(gray, to_canvas, border_value=1.0)
    canvas, thinned = _thin_thick_strokes(canvas)
    return NormalisedSketch(
        canvas=canvas.astype(np.float32),
        to_canvas=to_canvas,
        input_size=(width, height),
        inverted=inverted,
        thinned=thinned,
    )


def _is_gray_float(value: Any) -> bool:
    return isinstance(value, np.ndarray) and value.ndim == 2 and value.dtype == np.float32


def _is_light_on_dark(gray: np.ndarray) -> bool:
    """White lines on black (edge maps, chalkboards): the paper, i.e. the border, is dark."""
    band = max(2, min(gray.shape) // 20)
    border = np.concatenate(
        [gray[:band].ravel(), gray[-band:].ravel(), gray[:, :band].ravel(), gray[:, -band:].ravel()]
    )
    return float(np.median(border)) < 0.45 and float(np.median(gray)) < 0.45


def _stretch_levels(gray: np.ndarray) -> np.ndarray:
    """Map the paper to white and the ink to black, so faint pencil reads like a pen line."""
    paper = float(np.percentile(gray, 90))
    candidates = gray[gray < paper - 0.08]
    if candidates.size < 20:
        raise InputError("Draw a face first: the image is blank.")
    ink = float(np.percentile(candidates, 10))
    if paper - ink < 0.1:
        raise InputError("The drawing is too faint to see: use darker strokes.")
    stretched = (gray - ink) / (paper - ink)
    return np.clip(stretched, 0.0, 1.0).astype(np.float32)


def ink_mask(gray: np.ndarray) -> np.ndarray:
    return (1.0 - gray) > INK_THRESHOLD


def drawing_region(canvas: np.ndarray, widen: float = 0.0) -> np.ndarray:
    """Where the face is, on a canvas sketch: the convex hull of its ink, continued straight down
    to the canvas's foot (a portrait's neck runs out of the picture even when it is not drawn),
    widened by ``widen`` x the canvas width. uint8 (H, W), 1 inside."""
    ys, xs = np.nonzero(ink_mask(canvas))
    region = np.zeros(canvas.shape, np.uint8)
    if xs.size < 3:
        return region
    lowest = ys >= ys.max() - 0.15 * (ys.max() - ys.min())
    foot_x0, foot_x1 = np.percentile(xs[lowest], [5, 95])
    bottom = canvas.shape[0] - 1
    points = np.concatenate([np.stack([xs, ys], 1), [[foot_x0, bottom], [foot_x1, bottom]]]).astype(np.int32)
    cv2.fillConvexPoly(region, cv2.convexHull(points), 1)
    if widen > 0.0:
        reach = max(1, round(widen * CANVAS_SIZE[0]))
        region = cv2.dilate(region, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * reach + 1, 2 * reach + 1)))
    return region


def midtone_fraction(values: np.ndarray) -> float:
    """The share of ``values`` (0 = ink, 1 = paper) that are mid-grey: shading, not lines or paper."""
    return float(np.mean((values > 0.15) & (values < 0.85)))


def is_line_drawing(canvas: np.ndarray) -> bool:
    """Lines on paper rather than a shaded sketch: inside :func:`drawing_region`, few pixels are
    mid-grey and few are darker than paper (< 0.9). An empty canvas counts as lines."""
    region = drawing_region(canvas).astype(bool)
    if not region.any():
        return True
    inside = canvas[region]
    ink = float(np.mean(inside < 0.9))
    return midtone_fraction(inside) < LINE_DRAWING_MAX_MIDTONES and ink < LINE_DRAWING_MAX_INK


def framing_transform(mask: np.ndarray) -> np.ndarray:
    """Similarity transform (2x3) that fits the drawing's extent into FRAME_BOX, centred."""
    ys, xs = np.nonzero(mask)
    if xs.size < 20:
        raise InputError("Draw a face first: the image is blank.")
    # Percentiles, not min/max: a stray speck should not shrink the face.
    x0, x1 = np.percentile(xs, [0.2, 99.8])
    y0, y1 = np.percentile(ys, [0.2, 99.8])
    box_w = max(x1 - x0 + 1.0, 8.0)
    box_h = max(y1 - y0 + 1.0, 8.0)
    fx0, fy0, fx1, fy1 = FRAME_BOX
    scale = min((fx1 - fx0) / box_w, (fy1 - fy0) / box_h)
    tx = (fx0 + fx1) / 2.0 - scale * (x0 + x1) / 2.0
    ty = (fy0 + fy1) / 2.0 - scale * (y0 + y1) / 2.0
    return np.array([[scale, 0.0, tx], [0.0, scale, ty]], dtype=np.float64)


def similarity_transform(source: np.ndarray, target: np.ndarray) -> np.ndarray:
    """Least-squares scale, rotation and translation (2x3) taking the source points onto the target
    points (exact for two points)."""
    from skimage.transform import SimilarityTransform  # slow to import; only alignment needs it

    transform = SimilarityTransform.from_estimate(np.asarray(source, np.float64), np.asarray(target, np.float64))
    if not transform:
        raise ValueError(f"no similarity transform fits these points: {transform}")
    return transform.params[:2].copy()


def warp_to_canvas(image: np.ndarray, to_canvas: np.ndarray, border_value: float | None = None,
                   interpolation: int = cv2.INTER_LINEAR) -> np.ndarray:
    """Apply the framing transform. border_value None replicates the edge (for photos).
    ``interpolation``: see :func:`_warp_scale_translate` (linear for drawings)."""
    return _warp_scale_translate(image, to_canvas, CANVAS_SIZE, border_value, interpolation)


def _warp_scale_translate(
    image: np.ndarray, matrix: np.ndarray, size: tuple[int, int], border_value: float | None,
    interpolation: int = cv2.INTER_LINEAR,
) -> np.ndarray:
    """warpAffine for scale+shift matrices; shrinking is done by area averaging first,
    because warpAffine alone would drop thin pen lines. ``interpolation``: for the warp that
    follows (an enlargement, or the sub-pixel shift left after the shrink). Linear suits
    drawings; photos and faces want cubic, because a linear half-pixel shift is a [0.5, 0.5] blur."""
    matrix = np.array(matrix, dtype=np.float64)
    scale_x, scale_y = matrix[0, 0], matrix[1, 1]
    if max(scale_x, scale_y) < 1.0:
        height, width = image.shape[:2]
        small_w, small_h = max(1, round(width * scale_x)), max(1, round(height * scale_y))
        image = cv2.resize(image, (small_w, small_h), interpolation=cv2.INTER_AREA)
        matrix[0, 0] = scale_x * width / small_w
        matrix[1, 1] = scale_y * height / small_h
    if border_value is None:
        border = dict(borderMode=cv2.BORDER_REPLICATE)
    else:
        border = dict(borderMode=cv2.BORDER_CONSTANT, borderValue=border_value)
    return cv2.warpAffine(image, matrix, size, flags=interpolation, **border)


def _thin_thick_strokes(canvas: np.ndarray) -> tuple[np.ndarray, bool]:
    """Marker-thick line art is thinned to a pen width the generator was trained on.

    Pencil shading is left alone: it is recognised by its many mid-grey pixels.
    """
    darkness = 1.0 - canvas
    drawn = darkness > 0.1
    if drawn.sum() < 50:
        return canvas, False
    solid = (darkness > 0.6).sum() / drawn.sum()
    if solid < 0.75:
        return canvas, False
    width = stroke_width(darkness > 0.5)
    if width <= THICK_STROKE_PX:
        return canvas, False
    radius = int(round((width - TARGET_STROKE_PX) / 2.0))
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * radius + 1, 2 * radius + 1))
    return cv2.dilate(canvas, kernel), True  # dilating the paper erodes the ink


def stroke_width(mask: np.ndarray) -> float:
    """Typical stroke width in pixels: twice the distance to the paper along stroke centres."""
    if mask.sum() == 0:
        return 0.0
    distance = cv2.distanceTransform(mask.astype(np.uint8), cv2.DIST_L2, 5)
    # Ridge pixels of the distance map are the stroke centre lines.
    ridge = (distance >= cv2.dilate(distance, np.ones((3, 3), np.uint8)) - 1e-6) & mask
    return float(2.0 * np.median(distance[ridge]) - 1.0) if ridge.any() else 0.0


# --------------------------------------------------------------------------------------
# Back to the input's frame
# --------------------------------------------------------------------------------------


def output_size(sketch: NormalisedSketch, canvas_scale: float = 1.0, at_least_input: bool = False) -> tuple[int, int]:
    """Size of the result: the input frame at the canvas's resolution, within sane bounds.

    ``at_least_input``: never smaller than the input (a full-size generator paints the canvas at
    2x, enough detail for a drawing that fills the 512x640 Sketchpad to come back at 512x640)."""
    width, height = sketch.input_size
    scale = sketch.scale * canvas_scale
    if at_least_input:
        scale = max(scale, 1.0)
    longest = max(width, height) * scale
    if longest > MAX_OUTPUT_SIDE:
        scale *= MAX_OUTPUT_SIDE / longest
    elif longest < MIN_OUTPUT_SIDE:
        scale *= MIN_OUTPUT_SIDE / longest
    return max(1, round(width * scale)), max(1, round(height * scale))


def uncanvas(face: np.ndarray, sketch: NormalisedSketch, size: tuple[int, int] | None = None) -> np.ndarray:
    """Map a canvas-framed image (any multiple of CANVAS_SIZE) back onto the input frame.

    ``size`` is (width, height) of the result; by default :func:`output_size`.
    """
    canvas_scale = face.shape[1] / CANVAS_SIZE[0]
    width, height = size or output_size(sketch, canvas_scale)
    to_output = canvas_to_output(sketch, canvas_scale, (width, height))
    background = None
    settling = settle_strength(to_output, face.shape[1::-1], (width, height))
    if settling > 0.0:
        # The generator paints its background lighter near the face than at the canvas's edge: far
        # past the canvas that shows as a rectangle, so the background is settled to one colour.
        face, background = settled_background(face, sketch, settling, _border_colour(face))
    # Bicubic for every resampling of the face: of the plain resizers it is the one the realism
    # judge prefers on enlarged generated faces, and a linear sub-pixel shift would blur the face
    # even at 1:1 (docs/training.md, "The face's last resampling"). (When the weights have an
    # upscaler, the face arrives here already at 2x.)
    warped = _warp_scale_translate(face, to_output, (width, height), border_value=None, interpolation=cv2.INTER_CUBIC)
    # Where the output frame reaches past the canvas, continue with the background colour, blended
    # over a soft seam, instead of smearing the canvas edge outwards.
    coverage = _warp_scale_translate(np.ones(face.shape[:2], np.float32), to_output, (width, height), border_value=0.0)
    if coverage.min() > 0.999:
        return warped
    if background is None:
        background = _border_colour(face)
    feather = max(1.0, 0.03 * face.shape[1] * to_output[0, 0])  # relative to the face, not the frame
    coverage = cv2.GaussianBlur(cv2.erode(coverage, np.ones((3, 3), np.uint8), iterations=int(feather)), (0, 0), feather)
    blended = coverage[..., None] * warped + (1.0 - coverage[..., None]) * background
    return np.clip(blended.round(), 0, 255).astype(face.dtype)


def _border_colour(face: np.ndarray) -> np.ndarray:
    """The median colour of the face's top, left and right 4-pixel borders (the foot is often neck)."""
    channels = face.shape[2]
    return np.median(np.concatenate([face[:4].reshape(-1, channels), face[:, :4].reshape(-1, channels),
                                     face[:, -4:].reshape(-1, channels)]), axis=0)


# How far the result reaches past the canvas (x the canvas width) before its background is settled
# fully, and below which it is left alone: a CUFS-framed sketch reaches a median 2% (its lit
# backdrop is part of the photo look), a drawing small on the Sketchpad 20% and more.
SETTLE_FROM, SETTLE_FULL = 0.05, 0.15
SETTLE_CLEARANCE = 0.05  # x the canvas width: the drawing's region widened by this keeps its pixels
SETTLE_FADE = 0.03  # x the canvas width: the Gaussian over which the kept region fades out


def settle_strength(to_output: np.ndarray, face_size: tuple[int, int], size: tuple[int, int]) -> float:
    """0 (leave the background as painted) to 1 (one colour away from the face), by how far the
    result (``size``) reaches past the canvas face (``face_size``, both (width, height)) on its
    farthest side. ``to_output``: face pixels -> result pixels."""
    (width, height), (face_width, face_height) = size, face_size
    x0, y0 = to_output[0, 2], to_output[1, 2]
    x1, y1 = x0 + to_output[0, 0] * face_width, y0 + to_output[1, 1] * face_height
    reach = max(x0, width - x1, y0, height - y1) / (to_output[0, 0] * face_width)
    return float(np.clip((reach - SETTLE_FROM) / (SETTLE_FULL - SETTLE_FROM), 0.0, 1.0))


def settled_background(face: np.ndarray, sketch: NormalisedSketch, strength: float,
                       fallback: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The canvas face with everything away from the drawing faded towards one colour (the median
    of the generated background there) by ``strength``, and that colour (``fallback`` when the
    drawing leaves no background). Worked out at the canvas's resolution: the mask is smooth."""
    region = drawing_region(sketch.canvas, widen=SETTLE_CLEARANCE)
    away = region == 0
    if away.sum() < 50:
        return face, fallback
    step = max(1, face.shape[1] // CANVAS_SIZE[0])
    colour = np.median(face[::step, ::step][away], axis=0)
    colour = (strength * colour + (1.0 - strength) * fallback).astype(np.float32)
    fade = strength * (1.0 - cv2.GaussianBlur(region.astype(np.float32), (0, 0), SETTLE_FADE * CANVAS_SIZE[0]))
    if fade.shape != face.shape[:2]:
        fade = cv2.resize(fade, face.shape[1::-1], interpolation=cv2.INTER_LINEAR)
    settled = face.astype(np.float32)
    settled += fade[..., None] * (colour - settled)
    return np.clip(settled.round(), 0, 255).astype(face.dtype), colour


def canvas_to_output(sketch: NormalisedSketch, canvas_scale: float, size: tuple[int, int]) -> np.ndarray:
    """2x3 affine from a canvas-framed image's pixels (the canvas at ``canvas_scale``) to the
    result's, for a result of ``size`` (width, height) in the input's frame."""
    width, height = size
    # input -> canvas is (s, t); output = input * k with k = width / input_width.
    k_x = width / sketch.input_size[0]
    k_y = height / sketch.input_size[1]
    s = sketch.scale
    tx, ty = sketch.to_canvas[0, 2], sketch.to_canvas[1, 2]
    # face pixel f = canvas_scale * (s * input + t)  =>  output = k * (f / canvas_scale - t) / s
    return np.array(
        [
            [k_x / (s * canvas_scale), 0.0, -k_x * tx / s],
            [0.0, k_y / (s * canvas_scale), -k_y * ty / s],
        ]
    )
