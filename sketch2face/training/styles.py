"""Synthetic sketch styles made from photos at load time.

Every style takes a canvas-framed RGB photo (uint8, H x W x 3) and a numpy Generator, and
returns a greyscale sketch (float32, H x W, 1 = white paper). Training mixes them so the
generator learns face structure from lines, not one artist's shading:

- ``pencil``: colour-dodge pencil drawing (grey -> invert -> blur -> dodge).
- ``xdog``: extended difference-of-Gaussians line drawing (Winnemoeller et al., 2012).
- ``edges``: thin 1-pixel edge maps, like a Canny edge detector's output.
- ``doodle``: what people draw with a mouse: the facial features from 68 landmarks plus the
  long outer contours, at a random pen width, with broken and missing strokes and a small
  elastic wobble.
"""

from __future__ import annotations

import cv2
import numpy as np

# dlib's 68-point layout: (first, last, closed) for each facial part a person would draw.
LANDMARK_PARTS = {
    "jaw": (0, 16, False),
    "right_brow": (17, 21, False),
    "left_brow": (22, 26, False),
    "nose_bridge": (27, 30, False),
    "nose_base": (31, 35, False),
    "right_eye": (36, 41, True),
    "left_eye": (42, 47, True),
    "outer_lips": (48, 59, True),
    "inner_lips": (60, 67, True),
}


def _gray(photo: np.ndarray) -> np.ndarray:
    return cv2.cvtColor(photo, cv2.COLOR_RGB2GRAY).astype(np.float32) / 255.0


def pencil(photo: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    gray = _gray(photo)
    sigma = rng.uniform(2.0, 6.0)
    blurred_inverse = cv2.GaussianBlur(1.0 - gray, (0, 0), sigma)
    dodged = gray / np.maximum(1.0 - blurred_inverse, 1e-3)  # colour dodge
    darkness = rng.uniform(1.5, 3.0)  # a soft or a heavy hand
    return np.clip(dodged, 0.0, 1.0) ** darkness


def xdog(photo: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    gray = _gray(photo)
    low, high = np.percentile(gray, [2, 98])
    gray = np.clip((gray - low) / max(high - low, 1e-3), 0.0, 1.0)  # dark skin must not flood black
    sigma = rng.uniform(0.7, 1.4)
    sharpen = rng.uniform(15.0, 30.0)
    threshold = rng.uniform(0.55, 0.8)
    steepness = rng.uniform(8.0, 20.0)
    narrow = cv2.GaussianBlur(gray, (0, 0), sigma)
    wide = cv2.GaussianBlur(gray, (0, 0), sigma * 1.6)
    difference = (1.0 + sharpen) * narrow - sharpen * wide
    lines = np.where(difference >= threshold, 1.0, 1.0 + np.tanh(steepness * (difference - threshold)))
    return np.clip(lines, 0.0, 1.0).astype(np.float32)


def edges(photo: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    gray = (_gray(photo) * 255).astype(np.uint8)
    blurred = cv2.GaussianBlur(gray, (0, 0), rng.uniform(0.8, 2.0))
    low = rng.uniform(20, 60)
    edge_map = cv2.Canny(blurred, low, low * rng.uniform(2.0, 3.0))
    return 1.0 - edge_map.astype(np.float32) / 255.0


def doodle(photo: np.ndarray, rng: np.random.Generator, landmarks: np.ndarray | None = None) -> np.ndarray:
    """Mouse-drawn look: black strokes of one pen width on white, imperfect on purpose."""
    height, width = photo.shape[:2]
    pen = int(rng.integers(1, 6))
    ink = np.zeros((height, width), np.uint8)

    # Outer contours (head, hair, shoulders): long edges of a heavily smoothed photo.
    contours = _long_contours(photo, rng)
    if landmarks is not None and rng.random() < 0.5:
        chin = landmarks[8, 1]
        contours[int(min(height, chin + rng.uniform(5, 30))):] = 0  # many people stop at the chin
    contours = _break_strokes(contours, rng, keep=rng.uniform(0.6, 1.0))
    if pen > 1:
        kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (pen, pen))
        contours = cv2.dilate(contours, kernel)
    ink = np.maximum(ink, contours)

    if landmarks is not None:
        for name, (first, last, closed) in LANDMARK_PARTS.items():
            if rng.random() < (0.08 if name == "jaw" else 0.15):
                continue  # a missing stroke
            points = landmarks[first : last + 1] + rng.normal(0.0, 1.2, size=(last - first + 1, 2))
            points = _smooth_polyline(points, closed)
            cv2.polylines(ink, [np.round(points * 4).astype(np.int32)], closed, 255, pen, cv2.LINE_AA, shift=2)
        if rng.random() < 0.6:  # pupils
            for first, last in ((36, 41), (42, 47)):
                centre = landmarks[first : last + 1].mean(0) + rng.normal(0, 0.8, 2)
                radius = max(1, int(round(rng.uniform(1.5, 3.5))))
                cv2.circle(ink, tuple(int(v) for v in np.round(centre)), radius, 255, -1, cv2.LINE_AA)

    ink = _elastic(ink, rng, amplitude=rng.uniform(0.0, 3.0))
    return 1.0 - ink.astype(np.float32) / 255.0


def _long_contours(photo: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    gray = cv2.cvtColor(photo, cv2.COLOR_RGB2GRAY)
    smooth = cv2.GaussianBlur(gray, (0, 0), rng.uniform(2.0, 3.5))
    edge_map = cv2.Canny(smooth, 30, 70)
    count, labels, stats, _ = cv2.connectedComponentsWithStats(edge_map, connectivity=8)
    long_enough = np.zeros(count, bool)
    long_enough[1:] = stats[1:, cv2.CC_STAT_AREA] >= rng.uniform(25, 60)
    return np.where(long_enough[labels], 255, 0).astype(np.uint8)


def _break_strokes(ink: np.ndarray, rng: np.random.Generator, keep: float) -> np.ndarray:
    """Erase random blobs so strokes end early or have gaps."""
    height, width = ink.shape
    noise = rng.random((height // 8 + 1, width // 8 + 1)).astype(np.float32)
    noise = cv2.resize(noise, (width, height), interpolation=cv2.INTER_LINEAR)
    return np.where(noise < keep, ink, 0).astype(np.uint8)


def _smooth_polyline(points: np.ndarray, closed: bool, samples: int = 4) -> np.ndarray:
    """Catmull-Rom through the landmarks, so strokes curve like a hand-drawn line."""
    if len(points) < 3:
        return points
    padded = np.vstack([points[-1:], points, points[:2]]) if closed else np.vstack([points[:1], points, points[-1:]])
    segments = len(points) if closed else len(points) - 1
    curve = []
    for index in range(segments):
        p0, p1, p2, p3 = padded[index : index + 4]
        for t in np.linspace(0.0, 1.0, samples, endpoint=False):
            t2, t3 = t * t, t * t * t
            curve.append(
                0.5
                * (
                    2 * p1
                    + (p2 - p0) * t
                    + (2 * p0 - 5 * p1 + 4 * p2 - p3) * t2
                    + (3 * p1 - p0 - 3 * p2 + p3) * t3
                )
            )
    if not closed:
        curve.append(points[-1])
    return np.asarray(curve)


def _elastic(image: np.ndarray, rng: np.random.Generator, amplitude: float, smoothness: float = 24.0) -> np.ndarray:
    if amplitude <= 0.0:
        return image
    height, width = image.shape[:2]
    field = rng.normal(0.0, 1.0, size=(2, height // 8 + 1, width // 8 + 1)).astype(np.float32)
    dx, dy = (
        cv2.GaussianBlur(cv2.resize(component, (width, height)), (0, 0), smoothness / 4) for component in field
    )
    scale = amplitude / max(float(np.abs(dx).max()), float(np.abs(dy).max()), 1e-6)
    grid_x, grid_y = np.meshgrid(np.arange(width, dtype=np.float32), np.arange(height, dtype=np.float32))
    return cv2.remap(image, grid_x + dx * scale, grid_y + dy * scale, cv2.INTER_LINEAR, borderValue=0)


PHOTO_STYLES = {"pencil": pencil, "xdog": xdog, "edges": edges, "doodle": doodle}


def make_sketch(style: str, photo: np.ndarray, rng: np.random.Generator, landmarks: np.ndarray | None = None) -> np.ndarray:
    if style not in PHOTO_STYLES:
        raise ValueError(f"unknown sketch style {style!r}; choose from {sorted(PHOTO_STYLES)}")
    if style == "doodle":
        return doodle(photo, rng, landmarks)
    return PHOTO_STYLES[style](photo, rng)
