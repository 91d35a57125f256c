"""Colour photos given instead of sketches: spotted, and sketched before the model sees them."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from sketch2face import photo_to_sketch
from sketch2face.errors import InputError
from .drawings import drawing

EXAMPLES = sorted((Path(__file__).resolve().parent.parent / "examples").glob("*.png"))


def encoded(image: Image.Image, format: str = "PNG") -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=format)
    return buffer.getvalue()


def colour_photo(size=(320, 400)) -> Image.Image:
    """Smooth shading in several colours under a white wall: enough like a photo for the check."""
    width, height = size
    ys, xs = np.mgrid[0:height, 0:width] / np.array([height, width])[:, None, None]
    rgb = np.stack([230 - 120 * ys, 170 - 90 * xs, 120 + 100 * xs * ys], axis=-1)
    rgb[: height // 8] = 250  # the wall gives the light's colour
    return Image.fromarray(rgb.clip(0, 255).astype(np.uint8))


def lamp_lit(path: Path, tmp_path: Path) -> Path:
    """A sketch as a phone photo under a warm lamp: yellow cast, light falling off to one corner."""
    pixels = np.asarray(Image.open(path).convert("RGB"), dtype=np.float32)
    height, width = pixels.shape[:2]
    ys, xs = np.mgrid[0:height, 0:width]
    light = 1.0 - 0.35 * (((xs - 0.3 * width) / width) ** 2 + ((ys - 0.3 * height) / height) ** 2)
    tinted = pixels * light[..., None] * np.array([1.0, 0.88, 0.70])
    out = tmp_path / f"lamp_{path.name}"
    Image.fromarray(tinted.clip(0, 255).astype(np.uint8)).save(out)
    return out


def test_drawings_are_not_taken_for_photos_even_under_a_warm_lamp(tmp_path):
    assert EXAMPLES
    for path in EXAMPLES:
        assert not photo_to_sketch.looks_like_a_colour_photo(path), path
        assert not photo_to_sketch.looks_like_a_colour_photo(lamp_lit(path, tmp_path)), f"{path} under a lamp"


def test_a_colour_photo_is_spotted_and_its_grey_copy_is_not():
    photo = colour_photo()
    assert photo_to_sketch.looks_like_a_colour_photo(encoded(photo, "JPEG"))
    assert not photo_to_sketch.looks_like_a_colour_photo(encoded(photo.convert("L")))


def test_a_photo_is_sketched_with_a_note_and_a_drawing_passes_untouched(tmp_path):
    path = tmp_path / "photo.jpg"
    colour_photo(size=(1600, 2000)).save(path, quality=92)
    sketch, notes = photo_to_sketch.sketch_if_photo(str(path))
    assert notes == [photo_to_sketch.PHOTO_NOTE]
    assert sketch.dtype == np.uint8 and sketch.shape == (640, 512)  # long side PHOTO_SKETCH_SIDE
    assert np.median(sketch) > 240  # mostly paper: a pencil drawing, not a grey photo

    data = encoded(drawing())
    assert photo_to_sketch.sketch_if_photo(data) == (data, [])


def test_transparency_counts_as_white_paper():
    hidden = np.asarray(colour_photo().convert("RGBA")).copy()
    hidden[..., 3] = 0
    assert photo_to_sketch.is_readable_image(encoded(Image.fromarray(hidden)))
    assert not photo_to_sketch.looks_like_a_colour_photo(encoded(Image.fromarray(hidden)))


def test_a_file_that_is_not_an_image_is_left_to_the_loader_to_refuse(monkeypatch):
    tiny = encoded(Image.new("RGB", (16, 16), "white"))
    assert photo_to_sketch.is_readable_image(tiny)  # too small for the model: the loader says so
    for unreadable in (b"not an image", encoded(colour_photo())[:100]):
        assert not photo_to_sketch.is_readable_image(unreadable)
        assert not photo_to_sketch.looks_like_a_colour_photo(unreadable)
        with pytest.raises(InputError, match="not an image we can read"):
            photo_to_sketch.pencil_sketch(unreadable)
    monkeypatch.setattr(photo_to_sketch, "MAX_INPUT_PIXELS", 15 * 15)  # no decoding past the loader's limit
    assert not photo_to_sketch.is_readable_image(tiny)
