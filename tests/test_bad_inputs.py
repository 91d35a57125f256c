"""Hostile and unusual uploads through the real API (gradio_client -> app launched in conftest).

Every bad file must come back as our one-line message and leave the server answering; every
odd-but-valid encoding (CMYK, 16-bit, palette, RGBA, animated GIF) must give the same face as
the plain greyscale drawing it encodes. Memory is measured in a process of its own, which
decodes the file exactly as the server does.
"""

from __future__ import annotations

import io
import re
import struct
import subprocess
import sys
import zlib
from pathlib import Path

import numpy as np
import pytest
from gradio_client import handle_file
from PIL import Image, ImageDraw

from sketch2face import preprocess

MiB = 1024 * 1024
REPO_ROOT = Path(__file__).resolve().parent.parent


# --------------------------------------------------------------------------------------
# Inputs made here (no third-party images)
# --------------------------------------------------------------------------------------


def face_drawing(size: tuple[int, int] = (320, 400)) -> np.ndarray:
    """A pen doodle of a face, uint8 greyscale, black on white."""
    width, height = size
    image = Image.new("L", size, 255)
    draw = ImageDraw.Draw(image)
    draw.ellipse((width * 0.2, height * 0.12, width * 0.8, height * 0.85), outline=0, width=4)
    for cx in (0.38, 0.62):
        draw.ellipse((width * (cx - 0.06), height * 0.42, width * (cx + 0.06), height * 0.47), outline=0, width=3)
        draw.ellipse((width * (cx - 0.015), height * 0.435, width * (cx + 0.015), height * 0.455), fill=0)
        draw.line([(width * (cx - 0.07), height * 0.37), (width * (cx + 0.07), height * 0.36)], fill=0, width=3)
    draw.line([(width * 0.5, height * 0.48), (width * 0.47, height * 0.6), (width * 0.53, height * 0.61)], fill=0, width=3)
    draw.arc((width * 0.38, height * 0.62, width * 0.62, height * 0.72), 20, 160, fill=0, width=4)
    return np.asarray(image)


def other_drawing(size: tuple[int, int] = (320, 400)) -> np.ndarray:
    """The same head outline (so the same framing and output size) with a cross instead of a face."""
    width, height = size
    image = Image.new("L", size, 255)
    draw = ImageDraw.Draw(image)
    draw.ellipse((width * 0.2, height * 0.12, width * 0.8, height * 0.85), outline=0, width=4)
    draw.line([(width * 0.3, height * 0.3), (width * 0.7, height * 0.7)], fill=0, width=8)
    draw.line([(width * 0.7, height * 0.3), (width * 0.3, height * 0.7)], fill=0, width=8)
    return np.asarray(image)


def huge_png(side: int, palette: bool) -> bytes:
    """A side x side 1-bit PNG (greyscale or palette), written row by row with zlib.

    It decodes to side**2 pixels (gigabytes as RGB floats) but compresses to kilobytes,
    and building it never holds more than one row in memory.
    """

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    row = b"\0" + bytes((side + 7) // 8)  # filter byte, then 1 bit per pixel, all index/level 0
    if palette:  # colour type 3, 1 bit; palette entry 0 is white
        header = struct.pack(">IIBBBBB", side, side, 1, 3, 0, 0, 0)
        extra = chunk(b"PLTE", bytes([255, 255, 255, 0, 0, 0]))
    else:  # colour type 0 (grey), 1 bit; level 0 is black, so this is a black page
        header = struct.pack(">IIBBBBB", side, side, 1, 0, 0, 0, 0)
        extra = b""
    compressor = zlib.compressobj(9)
    body = b"".join(compressor.compress(row) for _ in range(side)) + compressor.flush()
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + extra + chunk(b"IDAT", body) + chunk(b"IEND", b"")


def encoded(image: Image.Image, format: str, **options) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format, **options)
    return buffer.getvalue()


# --------------------------------------------------------------------------------------
# Helpers
# --------------------------------------------------------------------------------------


def upload(app_client, tmp_path: Path, name: str, content: bytes) -> Image.Image:
    path = tmp_path / name
    path.write_bytes(content)
    face_path, _ = app_client.predict(handle_file(str(path)), False, api_name="/generate")  # (face, status)
    with Image.open(face_path) as face:
        return face.convert("RGB")


def refused_message(app_client, tmp_path: Path, name: str, content: bytes) -> str:
    with pytest.raises(Exception) as excinfo:
        upload(app_client, tmp_path, name, content)
    message = str(excinfo.value)
    assert "\n" not in message.strip(), f"not one line: {message!r}"
    assert "Traceback" not in message and "upstream Gradio app" not in message, message
    return message


MEMORY_PROBE = """
import resource, sys
from sketch2face import InputError, preprocess
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
try:
    preprocess.normalise(sys.argv[1])
    outcome = "accepted"
except InputError:
    outcome = "refused"
print(outcome, (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) * 1024)
"""


def decoding_memory(path: Path) -> tuple[str, int]:
    """("accepted" or "refused", growth of the peak RSS in bytes) when a fresh process normalises
    the file as the server does; the process's own imports are not counted."""
    finished = subprocess.run([sys.executable, "-c", MEMORY_PROBE, str(path)], cwd=REPO_ROOT, capture_output=True,
                              text=True, timeout=300)
    assert finished.returncode == 0, finished.stderr[-2000:]
    outcome, growth = finished.stdout.split()
    return outcome, int(growth)


def assert_same_face(got: Image.Image, expected: Image.Image, max_mean_diff: float, what: str) -> None:
    assert got.size == expected.size, f"{what}: size {got.size} != {expected.size}"
    difference = np.abs(np.asarray(got, dtype=np.int16) - np.asarray(expected, dtype=np.int16))
    assert difference.mean() <= max_mean_diff, f"{what}: mean difference {difference.mean():.2f} from the plain drawing's face"


@pytest.fixture(scope="module")
def drawing() -> np.ndarray:
    return face_drawing()


@pytest.fixture(scope="module")
def plain_face(served_pipeline, drawing) -> Image.Image:
    """What the served model makes of the plain greyscale drawing."""
    return served_pipeline(drawing)


# --------------------------------------------------------------------------------------
# Refused, with a clear message
# --------------------------------------------------------------------------------------


def test_blank_sketchpad_is_refused(app_client, tmp_path):
    untouched = tmp_path / "untouched.png"
    Image.new("RGBA", (512, 640), (0, 0, 0, 0)).save(untouched)  # what the browser sends for an empty canvas
    for value in (
        {"background": None, "layers": [], "composite": handle_file(str(untouched))},
        {"background": None, "layers": [], "composite": None},
    ):
        with pytest.raises(Exception) as excinfo:
            app_client.predict(value, False, api_name="/generate_drawing")
        assert "Draw a face first" in str(excinfo.value)


def test_empty_upload_is_refused(app_client, tmp_path):
    message = refused_message(app_client, tmp_path, "empty.png", b"")
    assert message == "The uploaded file is empty: draw a face first, or upload a sketch."


def test_text_file_renamed_png_is_refused(app_client, tmp_path):
    message = refused_message(app_client, tmp_path, "notes.png", b"Shopping list: eggs, milk, pencils.\n" * 30)
    assert message == "The file is not an image we can read (use PNG, JPEG, WebP, GIF or BMP)."


@pytest.mark.parametrize("format", ["PNG", "JPEG"])
def test_truncated_file_is_refused(app_client, tmp_path, drawing, format):
    noisy = drawing.copy()
    noisy[::7] = np.random.default_rng(1).integers(0, 255, noisy[::7].shape, dtype=np.uint8)  # defeat compression
    whole = encoded(Image.fromarray(noisy), format)
    message = refused_message(app_client, tmp_path, f"cut.{format.lower()}", whole[: len(whole) // 2])
    assert message == "The image file is damaged or truncated: save it again and re-upload."


def test_one_pixel_image_is_refused(app_client, tmp_path):
    message = refused_message(app_client, tmp_path, "dot.png", encoded(Image.new("L", (1, 1), 0), "PNG"))
    assert message == "The image is too small (1x1 pixels); it needs at least 32x32."


@pytest.mark.parametrize("palette", [False, True], ids=["1-bit", "palette"])
def test_20000_pixel_square_png_is_refused_without_decoding(app_client, tmp_path, palette):
    bomb = huge_png(20_000, palette)
    assert len(bomb) < 2 * MiB  # kilobytes on the wire, 400 megapixels decoded
    message = refused_message(app_client, tmp_path, "bomb.png", bomb)
    # PIL's own guard may fire before ours reads the size, hence the optional dimensions.
    assert re.fullmatch(r"The image is too large( \(20000x20000 pixels\))?; the limit is 40 megapixels\..*", message), message
    outcome, growth = decoding_memory(tmp_path / "bomb.png")
    assert outcome == "refused" and growth < 200 * MiB, f"{outcome}; the peak RSS grew {growth / MiB:.0f} MiB"


def test_largest_accepted_image_is_decoded_within_bounded_memory(app_client, tmp_path):
    """6000x6000 (36 MP, under the 40 MP limit) of 1-bit line art: accepted, memory bounded."""
    side = 6000
    art = Image.new("1", (side, side), 1)
    draw = ImageDraw.Draw(art)
    draw.ellipse((side * 0.2, side * 0.1, side * 0.8, side * 0.9), outline=0, width=30)
    draw.ellipse((side * 0.35, side * 0.4, side * 0.45, side * 0.45), outline=0, width=20)
    draw.ellipse((side * 0.55, side * 0.4, side * 0.65, side * 0.45), outline=0, width=20)
    draw.arc((side * 0.38, side * 0.62, side * 0.62, side * 0.72), 20, 160, fill=0, width=25)
    content = encoded(art, "PNG")
    del art, draw
    face = upload(app_client, tmp_path, "poster.png", content)
    assert face.size[0] == face.size[1], "the square input's aspect was lost"
    assert preprocess.MIN_OUTPUT_SIDE <= face.size[0] <= preprocess.MAX_OUTPUT_SIDE
    assert np.asarray(face).std() > 5.0, "blank output"
    # Box-averaged to <= 16 MP in 8-bit before any float copy (preprocess.MAX_DECODED_PIXELS):
    # ~180 MiB measured; decoding it all as floats cost 1.1 GiB.
    outcome, growth = decoding_memory(tmp_path / "poster.png")
    assert outcome == "accepted" and growth < 512 * MiB, f"{outcome}; the peak RSS grew {growth / MiB:.0f} MiB"


# --------------------------------------------------------------------------------------
# Unusual encodings work and mean the same drawing
# --------------------------------------------------------------------------------------


def test_cmyk_jpeg_gives_the_plain_drawings_face(app_client, tmp_path, drawing, plain_face):
    ink = 255 - drawing
    cmyk = Image.merge("CMYK", [Image.new("L", (drawing.shape[1], drawing.shape[0]), 0)] * 3 + [Image.fromarray(ink)])
    face = upload(app_client, tmp_path, "print.jpg", encoded(cmyk, "JPEG", quality=95))
    assert_same_face(face, plain_face, max_mean_diff=4.0, what="CMYK JPEG")


def test_16_bit_greyscale_png_gives_the_plain_drawings_face(app_client, tmp_path, drawing, plain_face):
    deep = Image.fromarray(drawing.astype(np.uint16) * 257)  # 0..65535, mode I;16
    assert deep.mode == "I;16"
    face = upload(app_client, tmp_path, "scan16.png", encoded(deep, "PNG"))
    assert_same_face(face, plain_face, max_mean_diff=0.5, what="16-bit PNG")


def test_palette_png_gives_the_plain_drawings_face(app_client, tmp_path, drawing, plain_face):
    indexed = Image.fromarray(255 - drawing).convert("P")  # index i = grey 255 - i
    indexed.putpalette([channel for grey in range(255, -1, -1) for channel in (grey, grey, grey)])
    assert indexed.mode == "P"
    face = upload(app_client, tmp_path, "indexed.png", encoded(indexed, "PNG"))
    assert_same_face(face, plain_face, max_mean_diff=0.5, what="palette PNG")


def test_rgba_strokes_on_transparent_paper_give_the_plain_drawings_face(app_client, tmp_path, drawing, plain_face):
    rgba = np.zeros(drawing.shape + (4,), dtype=np.uint8)
    rgba[..., 3] = 255 - drawing  # black ink whose coverage is the drawing's darkness
    face = upload(app_client, tmp_path, "layer.png", encoded(Image.fromarray(rgba, "RGBA"), "PNG"))
    assert_same_face(face, plain_face, max_mean_diff=0.5, what="RGBA PNG")


def test_animated_gif_uses_its_first_frame(app_client, tmp_path, drawing, plain_face, served_pipeline):
    frames = [Image.fromarray(drawing).convert("P"), Image.fromarray(other_drawing()).convert("P")]
    gif = encoded(frames[0], "GIF", save_all=True, append_images=frames[1:], duration=200, loop=0)
    with Image.open(io.BytesIO(gif)) as check:
        assert getattr(check, "n_frames", 1) == 2
    face = upload(app_client, tmp_path, "wink.gif", gif)
    assert_same_face(face, plain_face, max_mean_diff=1.0, what="animated GIF")
    second_frame_face = np.asarray(served_pipeline(other_drawing()), dtype=np.int16)
    assert second_frame_face.shape == np.asarray(face).shape
    to_first = np.abs(np.asarray(face, dtype=np.int16) - np.asarray(plain_face, dtype=np.int16)).mean()
    to_second = np.abs(np.asarray(face, dtype=np.int16) - second_frame_face).mean()
    assert to_second > 0.5 and to_second > 4 * to_first, f"first frame {to_first:.2f}, second frame {to_second:.2f}"


# --------------------------------------------------------------------------------------
# Files the server must not hand out: only examples/ and its own outputs are allowed
# --------------------------------------------------------------------------------------

FORBIDDEN_FILE_URLS = [
    "/gradio_api/file=/etc/passwd",
    "/gradio_api/file=%2Fetc%2Fpasswd",
    "/gradio_api/file=/proc/self/environ",  # would leak secrets such as HF_TOKEN
    f"/gradio_api/file={REPO_ROOT}/app.py",
    "/gradio_api/file=app.py",
    "/gradio_api/file=./README.md",
    f"/gradio_api/file={REPO_ROOT}/tests/conftest.py",
    f"/gradio_api/file={REPO_ROOT}/.git/config",
    f"/gradio_api/file={REPO_ROOT}/weights/model.safetensors",
    f"/gradio_api/file={REPO_ROOT}/examples/../app.py",
    f"/gradio_api/file={REPO_ROOT}/examples/%2e%2e/app.py",
    f"/gradio_api/file={REPO_ROOT}/examples/..%2f..%2f..%2f..%2fetc%2fpasswd",
    "/gradio_api/file=examples/../app.py",
    "/file=/etc/passwd",
    "/static/../../../../etc/passwd",
    "/assets/../../../../etc/passwd",
]


def raw_get(app_url: str, path: str) -> tuple[int, bytes]:
    """GET the path byte for byte (no client-side normalisation of '..' or %2e)."""
    import http.client
    from urllib.parse import urlsplit

    address = urlsplit(app_url)
    connection = http.client.HTTPConnection(address.hostname, address.port, timeout=30)
    try:
        connection.request("GET", path)
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()


def test_examples_are_served_through_the_file_route(app_url):
    """The control for the test below: the route and URL form work for allowed files."""
    example = sorted((REPO_ROOT / "examples").glob("*.png"))[0]
    for path in (f"/gradio_api/file={example}", f"/gradio_api/file=examples/{example.name}"):
        status, body = raw_get(app_url, path)
        assert status == 200, path
        assert body == example.read_bytes()


@pytest.mark.parametrize("path", FORBIDDEN_FILE_URLS)
def test_files_outside_examples_and_outputs_are_not_served(app_url, path):
    status, body = raw_get(app_url, path)
    assert status in (403, 404), f"{path} answered {status}"
    assert b"root:" not in body and b"import" not in body and b"HF_" not in body


def test_served_config_has_analytics_off(app_url):
    status, body = raw_get(app_url, "/config")
    assert status == 200
    import json

    config = json.loads(body)
    assert config["analytics_enabled"] is False
    assert config["show_error"] is False  # tracebacks stay in the server log


# --------------------------------------------------------------------------------------
# Weight files
# --------------------------------------------------------------------------------------


def test_weights_with_missing_or_unknown_tensors_are_refused(tmp_path):
    """A model.safetensors that does not match the architecture must not load half-random.

    (huggingface_hub's mixin loads with strict=False unless told otherwise.)
    """
    from safetensors.torch import load_file, save_file

    from sketch2face.errors import ModelLoadError
    from sketch2face.networks import UNetGenerator
    from sketch2face.pipeline import load_generator

    UNetGenerator(ngf=8).save_pretrained(tmp_path)
    tensors = load_file(tmp_path / "model.safetensors")
    del tensors["to_image.0.weight"]
    save_file(tensors, tmp_path / "model.safetensors")
    with pytest.raises(ModelLoadError):
        load_generator(tmp_path)


# --------------------------------------------------------------------------------------
# Still alive
# --------------------------------------------------------------------------------------


def test_a_normal_request_still_succeeds_after_bad_ones(app_client, tmp_path, drawing, plain_face):
    whole = encoded(Image.fromarray(drawing), "PNG")
    for name, content in (("notes.png", b"not an image\n" * 30), ("cut.png", whole[: len(whole) // 2]),
                          ("bomb.png", huge_png(20_000, palette=True)), ("empty.png", b"")):
        refused_message(app_client, tmp_path, name, content)
    face = upload(app_client, tmp_path, "normal.png", whole)
    assert_same_face(face, plain_face, max_mean_diff=0.5, what="plain PNG")
    assert np.asarray(face).std() > 5.0, "blank output"
