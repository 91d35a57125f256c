"""Every kind of input the loader and the normaliser meet, built here in the tests."""

from __future__ import annotations

import io
import struct
import zlib

import numpy as np
import pytest
from PIL import Image, ImageDraw

from sketch2face import InputError
from sketch2face import preprocess
from sketch2face.preprocess import CANVAS_SIZE, FRAME_BOX, load_grayscale, normalise, uncanvas


def face_drawing(size=(256, 320), box=None, width=3, ink=0, paper=255) -> Image.Image:
    """A simple line-art face inside ``box`` (x0, y0, x1, y1) of a ``size`` greyscale image."""
    image = Image.new("L", size, paper)
    x0, y0, x1, y1 = box or (size[0] * 0.15, size[1] * 0.1, size[0] * 0.85, size[1] * 0.9)
    w, h = x1 - x0, y1 - y0
    draw = ImageDraw.Draw(image)
    draw.ellipse((x0, y0, x1, y1), outline=ink, width=width)
    for cx in (0.33, 0.67):
        draw.ellipse((x0 + w * (cx - 0.09), y0 + h * 0.4, x0 + w * (cx + 0.09), y0 + h * 0.47), outline=ink, width=width)
    draw.line([(x0 + w * 0.5, y0 + h * 0.48), (x0 + w * 0.45, y0 + h * 0.63), (x0 + w * 0.55, y0 + h * 0.64)], fill=ink, width=width)
    draw.arc((x0 + w * 0.3, y0 + h * 0.66, x0 + w * 0.7, y0 + h * 0.8), 20, 160, fill=ink, width=width)
    return image


def encode(image: Image.Image, fmt: str = "PNG", **options) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **options)
    return buffer.getvalue()


def ink_bbox(gray: np.ndarray, threshold: float = 0.5) -> tuple[int, int, int, int]:
    ys, xs = np.nonzero(gray < threshold)
    return int(xs.min()), int(ys.min()), int(xs.max()), int(ys.max())


# -- loading: every mode ends as float grey on white paper ----------------------------


def test_rgba_transparent_background_becomes_white_not_black():
    rgba = np.zeros((64, 64, 4), np.uint8)  # transparent pixels are RGB 0, like a browser canvas
    rgba[30:34, 10:54] = (0, 0, 0, 255)
    gray = load_grayscale(Image.fromarray(rgba, "RGBA"))
    assert gray.dtype == np.float32 and gray.shape == (64, 64)
    assert gray[0, 0] == pytest.approx(1.0)
    assert gray[31, 30] == pytest.approx(0.0)
    # The same through an encoded file and a plain array.
    assert np.allclose(load_grayscale(encode(Image.fromarray(rgba, "RGBA"))), gray)
    assert np.allclose(load_grayscale(rgba), gray)


def test_semi_transparent_ink_is_blended_onto_white():
    rgba = np.zeros((40, 40, 4), np.uint8)
    rgba[..., 3] = 128  # half-covered black
    assert load_grayscale(rgba)[0, 0] == pytest.approx(1.0 - 128 / 255, abs=1e-3)


def test_la_mode_transparent_is_white():
    la = Image.new("LA", (48, 48), (0, 0))
    la.putpixel((10, 10), (0, 255))
    gray = load_grayscale(encode(la))
    assert gray[0, 0] == pytest.approx(1.0)
    assert gray[10, 10] == pytest.approx(0.0)


def test_palette_image_with_transparency_index():
    palette = Image.new("P", (48, 48), 0)
    palette.putpalette([0, 0, 0, 255, 255, 255] + [0] * 762)
    palette.paste(1, (0, 0, 48, 24))  # top half white, bottom half index 0 ...
    palette.info["transparency"] = 0  # ... which is transparent (black RGB underneath)
    palette.paste(1, (0, 0, 48, 24))
    gray = load_grayscale(encode(palette, transparency=0))
    assert np.allclose(gray, 1.0)
    opaque = Image.new("P", (48, 48), 0)
    opaque.putpalette([0, 0, 0, 255, 255, 255] + [0] * 762)
    opaque.paste(1, (0, 0, 48, 24))
    gray = load_grayscale(encode(opaque))
    assert gray[0, 0] == pytest.approx(1.0) and gray[40, 0] == pytest.approx(0.0)


def test_cmyk_jpeg():
    cmyk = Image.new("CMYK", (64, 64), (0, 0, 0, 0))  # no ink: white
    cmyk.paste((0, 0, 0, 255), (0, 32, 64, 64))  # full black
    gray = load_grayscale(encode(cmyk, "JPEG", quality=95))
    assert gray[5, 5] > 0.95
    assert gray[50, 50] < 0.1


def test_sixteen_bit_greyscale():
    values = np.full((40, 40), 65535, np.uint16)
    values[20:, :] = 0
    values[0:5, 0:5] = 32768
    image = Image.fromarray(values)
    assert image.mode == "I;16"
    gray = load_grayscale(encode(image))
    assert gray[10, 10] == pytest.approx(1.0)
    assert gray[30, 30] == pytest.approx(0.0)
    assert gray[2, 2] == pytest.approx(0.5, abs=0.01)


def test_exif_rotation_is_applied():
    # Stored 40 wide x 80 high with a black band at the top; orientation 6 means
    # "rotate 90 degrees clockwise to display": displayed 80 wide x 40 high, band on the right.
    stored = Image.new("L", (40, 80), 255)
    stored.paste(0, (0, 0, 40, 10))
    exif = Image.Exif()
    exif[0x0112] = 6
    gray = load_grayscale(encode(stored, "JPEG", exif=exif.tobytes(), quality=95))
    assert gray.shape == (40, 80)
    assert gray[:, -5:].mean() < 0.1
    assert gray[:, :60].mean() > 0.9


def test_first_frame_of_an_animated_gif():
    first = Image.new("L", (64, 64), 255)
    first.paste(0, (0, 0, 16, 64))
    second = Image.new("L", (64, 64), 255)
    second.paste(0, (48, 0, 64, 64))
    data = encode(first, "GIF", save_all=True, append_images=[second], duration=100, loop=0)
    assert Image.open(io.BytesIO(data)).n_frames == 2
    gray = load_grayscale(data)
    assert gray[:, :16].mean() < 0.1
    assert gray[:, 48:].mean() > 0.9


def test_paths_file_objects_and_sketchpad_dicts(tmp_path):
    drawing = face_drawing()
    path = tmp_path / "face.png"
    drawing.save(path)
    expected = np.asarray(drawing, np.float32) / 255.0
    assert np.allclose(load_grayscale(path), expected)
    assert np.allclose(load_grayscale(str(path)), expected)
    with open(path, "rb") as handle:
        assert np.allclose(load_grayscale(handle), expected)
    # A Sketchpad value without a composite: the layers are drawn over the background.
    strokes = np.zeros((320, 256, 4), np.uint8)
    strokes[..., 3] = 255 - np.asarray(drawing)
    gray = load_grayscale({"background": None, "layers": [strokes], "composite": None})
    assert np.allclose(gray, expected, atol=1 / 255)


@pytest.mark.parametrize(
    ("source", "message"),
    [
        (None, "draw a face first"),
        (b"", "empty"),
        ({"background": None, "layers": [], "composite": None}, "Draw a face first"),
        (b"definitely not an image" * 10, "not an image we can read"),
        (12345, "Unsupported input type"),
    ],
)
def test_unusable_inputs_raise_one_line_input_errors(source, message):
    with pytest.raises(InputError) as excinfo:
        load_grayscale(source)
    assert message in str(excinfo.value)
    assert "\n" not in str(excinfo.value)


def test_one_pixel_image_is_refused_as_too_small():
    with pytest.raises(InputError, match="too small"):
        load_grayscale(encode(Image.new("L", (1, 1), 0)))


def png_header_only(width: int, height: int) -> bytes:
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)) + chunk(b"IEND", b"")


@pytest.mark.parametrize("size", [(100_000, 100_000), (8_000, 6_000)])
def test_huge_header_is_refused_without_decoding(size):
    # The file has no pixel data at all: decoding it would fail as "truncated", so the
    # "too large" answer proves the refusal came from the header alone.
    data = png_header_only(*size)
    assert len(data) < 100
    with pytest.raises(InputError, match="too large"):
        load_grayscale(data)


@pytest.mark.parametrize("fmt", ["PNG", "JPEG"])
def test_truncated_files_are_reported_as_damaged(fmt):
    noise = Image.fromarray(np.random.default_rng(1).integers(0, 255, (200, 200), dtype=np.uint8))
    data = encode(noise, fmt)
    with pytest.raises(InputError, match="damaged or truncated"):
        load_grayscale(data[: len(data) // 2])


# -- normalising -------------------------------------------------------------------------


def test_white_on_black_is_detected_and_inverted():
    dark_on_light = face_drawing()
    light_on_dark = Image.fromarray(255 - np.asarray(dark_on_light))
    inverted = normalise(light_on_dark)
    reference = normalise(dark_on_light)
    assert inverted.inverted and not reference.inverted
    assert np.abs(inverted.canvas - reference.canvas).mean() < 0.01
    assert np.median(inverted.canvas) > 0.95  # white paper on the canvas


def test_faint_pencil_is_levelled_to_black_ink():
    faint = face_drawing(ink=200, paper=245)  # light grey on off-white
    sketch = normalise(faint)
    assert sketch.canvas.min() < 0.05
    assert np.median(sketch.canvas) > 0.95


def test_too_faint_drawing_is_refused():
    with pytest.raises(InputError, match="too faint"):
        normalise(face_drawing(ink=232, paper=255))  # 9% darker than the paper


def test_very_thick_strokes_are_thinned_and_pen_strokes_are_not():
    thick = normalise(face_drawing(size=(512, 640), width=40))
    thin = normalise(face_drawing(size=(512, 640), width=6))
    assert thick.thinned and not thin.thinned
    assert preprocess.stroke_width(thick.canvas < 0.5) <= preprocess.THICK_STROKE_PX
    assert preprocess.stroke_width(thin.canvas < 0.5) < preprocess.THICK_STROKE_PX


def test_blank_image_asks_for_a_drawing():
    with pytest.raises(InputError, match="Draw a face first"):
        normalise(Image.new("L", (300, 300), 255))


def test_small_off_centre_face_is_framed_and_mapped_back():
    size = (640, 480)  # landscape upload, face small in the upper left
    box = (40, 30, 160, 180)
    drawing = face_drawing(size=size, box=box, width=2)
    sketch = normalise(drawing)

    # On the canvas the drawing fills the frame box, centred.
    x0, y0, x1, y1 = ink_bbox(sketch.canvas)
    fx0, fy0, fx1, fy1 = FRAME_BOX
    assert sketch.canvas.shape == (CANVAS_SIZE[1], CANVAS_SIZE[0])
    assert y0 == pytest.approx(fy0, abs=6) and y1 == pytest.approx(fy1, abs=6)  # height-limited
    assert (x0 + x1) / 2 == pytest.approx((fx0 + fx1) / 2, abs=3)

    # Mapping the canvas back gives the input's frame (aspect kept) with the face where drawn.
    for canvas_scale in (1, 2):
        canvas_image = np.repeat((sketch.canvas * 255).astype(np.uint8)[..., None], 3, axis=2)
        if canvas_scale == 2:
            canvas_image = canvas_image.repeat(2, axis=0).repeat(2, axis=1)
        back = uncanvas(canvas_image, sketch)
        height, width = back.shape[:2]
        assert width / height == pytest.approx(size[0] / size[1], abs=0.01)
        k = width / size[0]
        bx0, by0, bx1, by1 = ink_bbox(back[..., 0] / 255.0)
        expected = ink_bbox(np.asarray(drawing, np.float32) / 255.0)
        for got, want in zip((bx0, by0, bx1, by1), expected):
            assert got / k == pytest.approx(want, abs=4)


def test_a_twice_as_large_canvas_result_maps_back_twice_as_large():
    sketch = normalise(face_drawing(size=(300, 400)))
    face = np.full((CANVAS_SIZE[1], CANVAS_SIZE[0], 3), 128, np.uint8)
    single = uncanvas(face, sketch)
    double = uncanvas(face.repeat(2, axis=0).repeat(2, axis=1), sketch)
    assert double.shape[0] == pytest.approx(2 * single.shape[0], abs=2)
    assert double.shape[1] == pytest.approx(2 * single.shape[1], abs=2)


def test_output_size_stays_within_bounds():
    tiny_face_big_image = normalise(face_drawing(size=(4000, 3000), box=(100, 100, 180, 200), width=2))
    width, height = preprocess.output_size(tiny_face_big_image)
    assert max(width, height) == preprocess.MAX_OUTPUT_SIDE
    assert width / height == pytest.approx(4 / 3, abs=0.01)
    big_face_small_image = normalise(face_drawing(size=(64, 80), width=1))
    assert max(preprocess.output_size(big_face_small_image)) >= preprocess.MIN_OUTPUT_SIDE


def test_a_face_keeps_its_fine_detail_when_mapped_back_at_the_canvas_resolution():
    # A CUFS-sized drawing maps back nearly 1:1 with a sub-pixel shift. Linear interpolation there
    # blurs (pixel noise kept 0.67 of its contrast when it was used); cubic keeps 0.82.
    import cv2

    sketch = normalise(_cufs_like_drawing())
    face = np.random.default_rng(0).integers(0, 256, (CANVAS_SIZE[1], CANVAS_SIZE[0], 3), dtype=np.uint8)
    size = preprocess.output_size(sketch)
    to_output = preprocess.canvas_to_output(sketch, 1.0, size)
    assert to_output[0, 0] == pytest.approx(1.0, abs=0.01)  # the near-1:1 case this is about
    result = uncanvas(face, sketch, size).astype(np.float32)
    inner = (slice(80, 340), slice(70, 270))  # inside the canvas face, away from the blended border
    assert result[inner].std() > 0.75 * face.std()
    # And it is the face moved, not noise: close to a Lanczos-4 warp of it.
    reference = cv2.warpAffine(face, to_output, size, flags=cv2.INTER_LANCZOS4, borderMode=cv2.BORDER_REPLICATE)
    assert np.sqrt(np.mean((result[inner] - reference[inner]) ** 2)) < 0.3 * face.std()


def test_drawings_are_still_framed_with_linear_interpolation(monkeypatch):
    # Pen lines: cubic would ring around them, and the generator was trained on linear framing.
    import cv2

    flags = []
    real_warp = cv2.warpAffine
    monkeypatch.setattr(cv2, "warpAffine", lambda *args, **kwargs: flags.append(kwargs.get("flags")) or real_warp(*args, **kwargs))
    normalise(_cufs_like_drawing())
    assert flags and set(flags) == {cv2.INTER_LINEAR}


def _cufs_like_drawing() -> np.ndarray:
    """A 200x250 drawing, the size of a CUFS sketch (the canvas is that frame x1.28)."""
    image = Image.new("L", (200, 250), 255)
    draw = ImageDraw.Draw(image)
    draw.ellipse((40, 40, 160, 210), outline=0, width=3)
    draw.ellipse((70, 100, 90, 112), outline=0, width=2)
    draw.ellipse((110, 100, 130, 112), outline=0, width=2)
    return np.asarray(image)


# -- the background past the canvas ----------------------------------------------------


def test_drawing_region_is_the_ink_hull_run_down_to_the_canvas_foot():
    import cv2

    canvas = np.ones((CANVAS_SIZE[1], CANVAS_SIZE[0]), np.float32)
    cv2.circle(canvas, (128, 120), 80, 0.0, 3)  # a head with no neck drawn
    region = preprocess.drawing_region(canvas)
    assert region[120, 128] == 1 and region[CANVAS_SIZE[1] - 1, 128] == 1  # inside; the neck reaches the foot
    assert region[CANVAS_SIZE[1] - 1, 5] == 0 and region[5, 5] == 0 and region[5, CANVAS_SIZE[0] - 6] == 0
    assert preprocess.drawing_region(np.ones_like(canvas)).sum() == 0


def _haloed_face(sketch) -> np.ndarray:
    """A canvas 'generated face': skin inside the drawing, a background lighter near it (200 -> 240)."""
    import cv2

    region = preprocess.drawing_region(sketch.canvas)
    distance = cv2.distanceTransform((1 - region).astype(np.uint8), cv2.DIST_L2, 5)
    background = 240.0 - 40.0 * np.clip(distance / 60.0, 0, 1)
    face = np.repeat(background[..., None], 3, axis=2)
    face[region > 0] = (190, 140, 120)
    return face.round().astype(np.uint8)


def _portrait_drawing() -> np.ndarray:
    """A 200x250 drawing framed as a CUFS sketch is: hair near the top, shoulders out to the sides."""
    image = Image.new("L", (200, 250), 255)
    draw = ImageDraw.Draw(image)
    draw.ellipse((50, 10, 150, 180), outline=0, width=3)
    draw.line([(10, 240), (60, 200), (140, 200), (190, 240)], fill=0, width=3)
    return np.asarray(image)


def test_settling_follows_how_far_the_result_reaches_past_the_canvas():
    framed = normalise(_portrait_drawing())  # CUFS framing: the result is about the canvas
    small = normalise(face_drawing(size=(600, 600), box=(230, 220, 370, 400)))  # small on a big page
    for sketch, expected in ((framed, 0.0), (small, 1.0)):
        size = preprocess.output_size(sketch)
        to_output = preprocess.canvas_to_output(sketch, 1.0, size)
        assert preprocess.settle_strength(to_output, CANVAS_SIZE, size) == expected
    # In between, it rises with the reach: a frame 10% of the canvas width wider on each side.
    to_output = np.array([[1.0, 0.0, 25.6], [0.0, 1.0, 25.6]])
    assert preprocess.settle_strength(to_output, CANVAS_SIZE, (256 + 51, 320 + 51)) == pytest.approx(0.5, abs=0.02)


def test_a_small_drawing_gets_an_even_background_and_keeps_its_face():
    from sketch2face.training.evaluate import seam_step

    sketch = normalise(face_drawing(size=(600, 600), box=(230, 220, 370, 400)))
    face = _haloed_face(sketch)
    size = preprocess.output_size(sketch)
    result = uncanvas(face, sketch, size)
    assert seam_step(result, sketch) < 1.0  # no rectangle where the canvas ends
    # The face itself is as painted: its centre maps to the same colour.
    to_output = preprocess.canvas_to_output(sketch, 1.0, size)
    x, y = (to_output @ np.array([128.0, 170.0, 1.0])).round().astype(int)
    assert np.abs(result[y, x].astype(int) - (190, 140, 120)).max() <= 2
    # Far from the face the background is one colour, the painted background's median.
    corners = np.stack([result[5, 5], result[5, -6], result[-6, 5], result[-6, -6]]).astype(int)
    assert np.ptp(corners, axis=0).max() <= 1


def test_a_cufs_framed_result_keeps_its_painted_background():
    import cv2

    sketch = normalise(_portrait_drawing())
    face = _haloed_face(sketch)
    size = preprocess.output_size(sketch)
    to_output = preprocess.canvas_to_output(sketch, 1.0, size)
    assert preprocess.settle_strength(to_output, CANVAS_SIZE, size) == 0.0
    plain = preprocess._warp_scale_translate(face, to_output, size, border_value=None, interpolation=cv2.INTER_CUBIC)
    result = uncanvas(face, sketch, size)
    inner = (slice(size[1] // 10, -size[1] // 10), slice(size[0] // 10, -size[0] // 10))
    assert np.array_equal(result[inner], plain[inner])  # halo and all, as the generator painted it
