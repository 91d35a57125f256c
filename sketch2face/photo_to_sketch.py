"""Colour photos given instead of sketches: spotted, and turned into a pencil sketch first.

The generator was trained on drawings, so the web app sends each uploaded file through
:func:`sketch_if_photo` before the pipeline. Measured in benchmarks/photo_uploads.py.
"""

from __future__ import annotations

import io
from typing import Any

import cv2
import numpy as np
from PIL import Image, ImageOps

from .errors import InputError
from .preprocess import MAX_INPUT_PIXELS, midtone_fraction

PHOTO_PROBE_SIDE = 512  # the check looks at a small copy: a phone photo decodes in draft mode
PHOTO_SKETCH_SIDE = 640  # photos are sketched at this long side (what the pencil filter was measured at)
PENCIL_BLUR_SIGMA = 3.0
COLOURFUL_FRACTION = 0.05  # of pixels clearly coloured once the paper/light colour cast is removed
MID_TONE_FRACTION = 0.10  # of pixels between paper and ink once levels are stretched

PHOTO_NOTE = "This looks like a colour photo, not a drawing: the model expects a drawing, so the photo was turned into a pencil sketch first."


def _open_small_rgb(source: Any, side: int) -> Image.Image | None:
    """The image (a path or bytes) as RGB with its long side at most ``side``; None if it
    can't be read (the pipeline's loader then refuses it with the proper message).

    Not preprocess's loader: that one decodes at full size and refuses images under 32 px,
    this one only needs a small copy, fast.
    """
    try:
        handle = io.BytesIO(source) if isinstance(source, (bytes, bytearray)) else open(source, "rb")
        with handle:
            image = Image.open(handle)
            if image.size[0] * image.size[1] > MAX_INPUT_PIXELS:
                return None
            image.draft("RGB", (side, side))
            image = ImageOps.exif_transpose(image)
            image.thumbnail((side, side), Image.Resampling.BOX)
            if image.mode in ("RGBA", "LA", "PA", "P") or "transparency" in image.info:
                rgba = image.convert("RGBA")
                image = Image.alpha_composite(Image.new("RGBA", rgba.size, "white"), rgba)
            return image.convert("RGB")
    except Exception:  # noqa: BLE001  not an image, truncated, ...: the loader will say which
        return None


def is_readable_image(source: Any) -> bool:
    """Whether the file (a path or bytes) opens as an image at all."""
    return _open_small_rgb(source, PHOTO_PROBE_SIDE) is not None


def looks_like_a_colour_photo(source: Any) -> bool:
    """A colour photo (of a face), not a drawing: many clearly coloured pixels once the colour
    cast of the paper and the light is removed, and many mid-tones.

    Measured (benchmarks/photo_uploads.py): flags 534 of 542 face photos and none of 211
    sketches, nor of the same sketches tinted and unevenly lit like a phone photo under a lamp.
    """
    image = _open_small_rgb(source, PHOTO_PROBE_SIDE)
    if image is None or min(image.size) < 8:
        return False
    rgb = np.asarray(image, dtype=np.float32)
    white = np.percentile(rgb.reshape(-1, 3), 95, axis=0).clip(1.0, None)  # the paper's (or light's) colour
    balanced = Image.fromarray((rgb * (255.0 / white)).clip(0, 255).astype(np.uint8))
    hsv = np.asarray(balanced.convert("HSV"), dtype=np.float32)
    colourful = float(((hsv[..., 1] > 60) & (hsv[..., 2] > 40)).mean())
    gray = np.asarray(balanced.convert("L"), dtype=np.float32) / 255.0
    paper = float(np.percentile(gray, 90))
    ink = float(np.percentile(gray, 2))
    if paper - ink < 0.1:
        return False
    stretched = (gray - ink) / (paper - ink)
    return colourful >= COLOURFUL_FRACTION and midtone_fraction(stretched) >= MID_TONE_FRACTION


def pencil_sketch(source: Any) -> np.ndarray:
    """A colour photo as a pencil drawing (grey colour-dodge of its blurred negative), uint8."""
    image = _open_small_rgb(source, PHOTO_SKETCH_SIDE)
    if image is None:
        raise InputError("The file is not an image we can read (use PNG, JPEG, WebP, GIF or BMP).")
    gray = np.asarray(image.convert("L"), dtype=np.float32)
    blurred_negative = cv2.GaussianBlur(255.0 - gray, (0, 0), PENCIL_BLUR_SIGMA)
    return np.clip(gray * 255.0 / np.maximum(255.0 - blurred_negative, 1.0), 0, 255).astype(np.uint8)


def sketch_if_photo(source: Any) -> tuple[Any, list[str]]:
    """What the pipeline should see for an image file (a path or bytes), and notes on what was done to it."""
    if looks_like_a_colour_photo(source):
        return pencil_sketch(source), [PHOTO_NOTE]
    return source, []
