"""Draw the example sketches in examples/ as vector paths: ``python scripts/make_examples.py``.

Every example is a doodle of a face the way a person draws one with a mouse on the app's
canvas: a wobbly head outline, hair, eyes with pupils, brows, nose, mouth, ears and neck,
in round-capped pen strokes. Nothing is traced from a photo; the output is reproducible
(fixed seeds). Re-run after changing anything here; the app caches their outputs at start-up.
"""

from __future__ import annotations

import argparse
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

OUTPUT_DIR = Path(__file__).resolve().parent.parent / "examples"
SUPERSAMPLE = 4  # draw large, downsample: anti-aliased strokes like a browser canvas

Point = tuple[float, float]


# --------------------------------------------------------------------------------------
# Curves in face units: head centre at (0, 0), head half-width 1, half-height ~1.3, y down
# --------------------------------------------------------------------------------------


def bezier(p0: Point, p1: Point, p2: Point, p3: Point, steps: int = 40) -> list[Point]:
    t = np.linspace(0.0, 1.0, steps)[:, None]
    points = (1 - t) ** 3 * np.array(p0) + 3 * (1 - t) ** 2 * t * np.array(p1)
    points += 3 * (1 - t) * t**2 * np.array(p2) + t**3 * np.array(p3)
    return [tuple(point) for point in points]


def arc(cx: float, cy: float, rx: float, ry: float, start_deg: float, end_deg: float, steps: int = 48) -> list[Point]:
    angles = np.radians(np.linspace(start_deg, end_deg, steps))
    return [(cx + rx * math.cos(a), cy + ry * math.sin(a)) for a in angles]


def head_outline(width: float, jaw: float) -> list[Point]:
    """An egg: narrower towards the chin by ``jaw``; the pen overshoots where it closes."""
    points = []
    for angle in np.radians(np.linspace(-100, 272, 120)):
        x, y = width * math.cos(angle), 1.3 * math.sin(angle)
        if y > 0:
            x *= 1.0 - jaw * (y / 1.3) ** 2
        points.append((x, y))
    return points


@dataclass
class Face:
    """What varies between the examples' faces."""

    hair: str = "short"  # short | long | spiky | curly | bald | bun
    head_width: float = 1.0
    jaw: float = 0.3
    eye_size: float = 1.0
    smile: float = 0.12  # mouth curvature, face units (negative: frown)
    mouth_width: float = 0.3
    glasses: bool = False
    ears: bool = True
    neck: bool = True
    lower_lip: bool = False
    nostrils: bool = False


def face_strokes(face: Face) -> tuple[list[list[Point]], list[tuple[Point, float]]]:
    """Pen strokes (polylines) and filled dots (pupils) of a front-facing face."""
    w = face.head_width
    strokes: list[list[Point]] = [head_outline(w, face.jaw)]
    dots: list[tuple[Point, float]] = []

    eye_y, eye_dx = 0.0, 0.38 * w
    eye_half = 0.17 * face.eye_size
    for side in (-1, 1):
        cx = side * eye_dx
        strokes.append(bezier((cx - eye_half, eye_y), (cx - 0.5 * eye_half, eye_y - 0.13 * face.eye_size), (cx + 0.5 * eye_half, eye_y - 0.13 * face.eye_size), (cx + eye_half, eye_y)))
        strokes.append(bezier((cx - eye_half, eye_y), (cx - 0.4 * eye_half, eye_y + 0.09 * face.eye_size), (cx + 0.4 * eye_half, eye_y + 0.09 * face.eye_size), (cx + eye_half, eye_y)))
        dots.append(((cx, eye_y - 0.005), 0.055 * face.eye_size))
        # Brow: thicker at the inner end is beyond a mouse doodle; one arc.
        strokes.append(bezier((cx - side * 0.2, -0.24), (cx - side * 0.08, -0.33), (cx + side * 0.1, -0.33), (cx + side * 0.22, -0.26)))
        if face.glasses:
            strokes.append(arc(cx, eye_y, 0.27, 0.22, 0, 362))
        if face.ears:
            strokes.append(bezier((side * 0.97 * w, -0.12), (side * 1.22 * w, -0.22), (side * 1.22 * w, 0.35), (side * 0.93 * w, 0.38)))
    if face.glasses:
        strokes.append(bezier((-eye_dx + 0.27, -0.02), (-0.05, -0.08), (0.05, -0.08), (eye_dx - 0.27, -0.02)))

    # Nose: a bridge line and a hooked tip.
    strokes.append([(0.03, 0.08), (0.0, 0.25), (-0.07, 0.42), (-0.02, 0.47), (0.07, 0.46)])
    if face.nostrils:
        strokes.append(arc(-0.11, 0.44, 0.05, 0.035, 180, 330, 12))
        strokes.append(arc(0.11, 0.44, 0.05, 0.035, 210, 360, 12))

    mouth_y, half = 0.75, face.mouth_width
    strokes.append(bezier((-half, mouth_y), (-half / 3, mouth_y + face.smile), (half / 3, mouth_y + face.smile), (half, mouth_y)))
    if face.lower_lip:
        strokes.append(bezier((-half * 0.55, mouth_y + 0.12 + face.smile / 2), (-0.1, mouth_y + 0.2 + face.smile / 2), (0.1, mouth_y + 0.2 + face.smile / 2), (half * 0.55, mouth_y + 0.12 + face.smile / 2)))
    if face.neck:
        for side in (-1, 1):
            strokes.append(bezier((side * 0.42 * w, 1.12), (side * 0.44 * w, 1.35), (side * 0.45 * w, 1.55), (side * 0.5 * w, 1.75)))
    strokes.extend(hair_strokes(face.hair, w))
    return strokes, dots


def hair_strokes(style: str, w: float) -> list[list[Point]]:
    if style == "bald":
        return []
    if style == "short":
        return [
            bezier((-0.98 * w, -0.3), (-1.05 * w, -1.75), (1.05 * w, -1.75), (0.98 * w, -0.3)),
            bezier((-0.9 * w, -0.45), (-0.5 * w, -0.7), (-0.1, -0.75), (0.2 * w, -0.95)),
            bezier((0.2 * w, -0.95), (0.4 * w, -0.7), (0.7 * w, -0.65), (0.92 * w, -0.5)),
        ]
    if style == "long":
        return [
            bezier((0.05, -1.3), (-1.3 * w, -1.45), (-1.35 * w, 0.3), (-1.15 * w, 1.45)),
            bezier((0.05, -1.3), (1.3 * w, -1.45), (1.35 * w, 0.3), (1.15 * w, 1.45)),
            bezier((0.0, -1.28), (-0.3 * w, -0.9), (-0.75 * w, -0.7), (-0.95 * w, -0.2)),
            bezier((0.0, -1.28), (0.3 * w, -0.9), (0.75 * w, -0.7), (0.95 * w, -0.2)),
            bezier((-1.15 * w, 1.45), (-0.95 * w, 1.3), (-0.85 * w, 1.0), (-0.82 * w, 0.6)),
            bezier((1.15 * w, 1.45), (0.95 * w, 1.3), (0.85 * w, 1.0), (0.82 * w, 0.6)),
        ]
    if style == "spiky":
        # Zigzag between the head outline and a wider ring: spikes growing from the scalp.
        points = []
        for index, angle in enumerate(np.radians(np.linspace(200, 340, 15))):
            reach = 1.3 if index % 2 else 1.0
            points.append((reach * w * math.cos(angle), reach * 1.3 * math.sin(angle)))
        return [points]
    if style == "curly":
        loops: list[Point] = []
        for angle in np.linspace(190, 350, 9):
            cx, cy = 1.12 * w * math.cos(math.radians(angle)), 1.35 * math.sin(math.radians(angle))
            loops.extend(arc(cx, cy, 0.2, 0.2, angle - 200, angle + 150, 20))
        return [loops]
    if style == "bun":
        return [
            bezier((-0.98 * w, -0.3), (-1.0 * w, -1.6), (1.0 * w, -1.6), (0.98 * w, -0.3)),
            arc(0.0, -1.55, 0.38, 0.3, 0, 362),
            bezier((-0.9 * w, -0.4), (-0.4 * w, -1.0), (0.0, -1.1), (0.1, -1.25)),
            bezier((0.9 * w, -0.4), (0.4 * w, -1.0), (0.1, -1.1), (0.1, -1.25)),
        ]
    raise ValueError(f"unknown hair style {style!r}")


# --------------------------------------------------------------------------------------
# Rendering: face units -> canvas pixels, with a hand's wobble
# --------------------------------------------------------------------------------------


@dataclass
class Sheet:
    """One example image: canvas, where the face goes, and the pen."""

    name: str
    face: Face
    size: tuple[int, int] = (512, 640)  # the app's Sketchpad canvas
    centre: tuple[float, float] = (256.0, 300.0)
    scale: float = 145.0  # pixels per face unit
    pen: float = 4.0  # stroke width in pixels
    wobble: float = 0.012  # hand tremor, face units
    seed: int = 0
    paper: int = 255
    ink: int = 0
    white_on_black: bool = False
    pencil: bool = False  # grey strokes and paper grain, like a phone photo of a pencil sketch
    extra: dict = field(default_factory=dict)


def wobble(points: list[Point], amount: float, rng: np.random.Generator) -> list[Point]:
    """Low-frequency drift along the stroke: a hand, not a plotter."""
    array = np.array(points, dtype=np.float64)
    if amount <= 0 or len(array) < 3:
        return points
    knots = max(3, len(array) // 12)
    offsets = rng.normal(0.0, amount, size=(knots, 2))
    positions = np.linspace(0, knots - 1, len(array))
    drift = np.stack([np.interp(positions, np.arange(knots), offsets[:, axis]) for axis in range(2)], axis=1)
    return [tuple(point) for point in array + drift]


def render(sheet: Sheet) -> Image.Image:
    rng = np.random.default_rng(sheet.seed)
    factor = SUPERSAMPLE
    width, height = sheet.size
    image = Image.new("L", (width * factor, height * factor), 255)
    draw = ImageDraw.Draw(image)
    pen = max(1, round(sheet.pen * factor))
    cx, cy = sheet.centre

    def to_pixels(point: Point) -> tuple[float, float]:
        return ((cx + point[0] * sheet.scale) * factor, (cy + point[1] * sheet.scale) * factor)

    strokes, dots = face_strokes(sheet.face)
    for stroke in strokes:
        pixels = [to_pixels(point) for point in wobble(stroke, sheet.wobble, rng)]
        draw.line(pixels, fill=0, width=pen)
        for x, y in pixels:  # round joins and caps, as a canvas pen draws
            draw.ellipse((x - pen / 2, y - pen / 2, x + pen / 2, y + pen / 2), fill=0)
    for centre, radius in dots:
        x, y = to_pixels(centre)
        r = radius * sheet.scale * factor
        draw.ellipse((x - r, y - r, x + r, y + r), fill=0)

    image = image.resize(sheet.size, Image.Resampling.LANCZOS)
    darkness = 1.0 - np.asarray(image, dtype=np.float32) / 255.0
    if sheet.pencil:
        darkness = np.asarray(Image.fromarray((darkness * 255).astype(np.uint8)).filter(ImageFilter.GaussianBlur(0.8)), dtype=np.float32) / 255.0
    paper, ink = float(sheet.paper), float(sheet.ink)
    values = paper + (ink - paper) * darkness
    if sheet.pencil:
        # Uneven light across a photographed page, and paper grain.
        ys, xs = np.mgrid[0:height, 0:width]
        values -= 18.0 * (((xs - width * 0.3) / width) ** 2 + ((ys - height * 0.2) / height) ** 2)
        values += rng.normal(0.0, 3.0, size=values.shape)
    if sheet.white_on_black:
        values = 255.0 - values
    return Image.fromarray(np.clip(values, 0, 255).round().astype(np.uint8), mode="L")


SHEETS = [
    Sheet("01_short_hair", Face(hair="short", smile=0.1, lower_lip=True), pen=4, seed=1),
    Sheet("02_long_hair", Face(hair="long", head_width=0.92, jaw=0.38, eye_size=1.15, smile=0.08, mouth_width=0.26, lower_lip=True, ears=False), pen=3, seed=2),
    Sheet("03_glasses_spiky", Face(hair="spiky", head_width=1.05, jaw=0.22, glasses=True, smile=0.04, nostrils=True), pen=5, seed=3),
    Sheet("04_small_off_centre", Face(hair="curly", smile=0.14), size=(640, 512), centre=(190.0, 200.0), scale=70.0, pen=3, seed=4),
    Sheet("05_white_on_black", Face(hair="bun", head_width=0.95, jaw=0.35, smile=0.1, lower_lip=True), pen=5, seed=5, white_on_black=True),
    Sheet("06_thick_marker", Face(hair="short", head_width=1.05, smile=0.06, ears=True), pen=13, seed=6, wobble=0.02),
    Sheet("07_pencil_photo", Face(hair="long", head_width=0.95, jaw=0.33, smile=0.09, nostrils=True), size=(600, 800), centre=(300.0, 390.0), scale=175.0, pen=2.5, seed=7, paper=236, ink=95, pencil=True),
    Sheet("08_bald_frown", Face(hair="bald", head_width=1.08, jaw=0.25, eye_size=0.85, smile=-0.07, mouth_width=0.24, nostrils=True), pen=6, seed=8, wobble=0.018),
]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output-dir", type=Path, default=OUTPUT_DIR)
    args = parser.parse_args(argv)
    args.output_dir.mkdir(parents=True, exist_ok=True)
    for sheet in SHEETS:
        target = args.output_dir / f"{sheet.name}.png"
        render(sheet).save(target, optimize=True)
        print(target)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
