"""Synthetic sketch styles made from photos at load time.

Every style takes a canvas-framed RGB photo (uint8, H x W x 3) and a numpy Generator, and
returns a greyscale sketch (float32, H x W, 1 = white paper). Training mixes them so the
generator learns face structure from lines, not one artist's shading:

- ``pencil``: colour-dodge pencil drawing (grey -> invert -> blur -> dodge).
- ``xdog``: extended difference-of-Gaussians line drawing (Winnemoeller et al., 2012).
- ``edges``: thin 1-pixel edge maps, like a Canny edge detector's output.
- ``doodle``: what people draw with a mouse: simple shapes for each part placed by the 68
  landmarks (hair as strands, spikes, a scribble or an outline; eyes as dots or almonds; a nose
  as an L or two dots; ...), a wobbly pen of uneven width, missing parts, and the whole drawing
  deformed a little relative to the photo.
"""

from __future__ import annotations

import cv2
import numpy as np


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
    """What people draw with a mouse: a few features, each in one of the simple shapes people use,
    with a wobbly, uneven pen; some parts left out; then deformed relative to the photo.

    With landmarks: a face outline (the jaw, a whole oval, or the photo's long contours), hair as
    strands, spikes, a scribble or just its outline (found from the photo's colours), eyes as dots,
    almonds, outlines or circles, a nose as an L, two dots, lines or a hook, a mouth as a line, a
    smile or lips; brows, ears and a neck sometimes. Without landmarks: the long contours only.
    """
    height, width = photo.shape[:2]
    pen = Pen.random(rng)
    ink = np.zeros((height, width), np.uint8)
    if landmarks is None:
        pen.draw_mask(ink, _break_strokes(_long_contours(photo, rng), rng, keep=rng.uniform(0.6, 1.0)))
        return 1.0 - deform_relative_to_photo(ink, rng).astype(np.float32) / 255.0

    face = FaceGeometry(landmarks)
    outline = _choose(rng, {"jaw": 0.45, "oval": 0.25, "contours": 0.2, "none": 0.1})
    if outline == "jaw":
        pen.stroke(ink, _smooth_polyline(landmarks[0:17], closed=False), rng)
    elif outline == "oval":
        pen.stroke(ink, face.oval(rng), rng, closed=True)
    elif outline == "contours":
        contours = _long_contours(photo, rng)
        if rng.random() < 0.5:
            contours[int(min(height, face.chin[1] + rng.uniform(5, 30))):] = 0  # many people stop at the chin
        pen.draw_mask(ink, _break_strokes(contours, rng, keep=rng.uniform(0.6, 1.0)))
    if rng.random() < 0.9:
        draw_hair(ink, photo, face, pen, rng)
    if rng.random() < 0.65:
        for brow in (landmarks[17:22], landmarks[22:27]):
            raised = brow - [0.0, rng.uniform(0.0, 0.06) * face.height]
            pen.stroke(ink, _smooth_polyline(raised + rng.normal(0, 0.8, raised.shape), closed=False), rng)
    if rng.random() < 0.97:
        draw_eyes(ink, face, pen, rng)
    if rng.random() < 0.85:
        draw_nose(ink, face, pen, rng)
    if rng.random() < 0.93:
        draw_mouth(ink, face, pen, rng)
    if rng.random() < 0.3:
        for side in (-1, 1):  # ears: a "C" beside the upper jaw
            top, bottom = (landmarks[0], landmarks[3]) if side < 0 else (landmarks[16], landmarks[13])
            bulge = np.array([side * 0.12 * face.width, 0.0])
            pen.stroke(ink, _bezier(top, (top + bottom) / 2 + 2 * bulge, bottom), rng)
    if rng.random() < 0.45:
        length = rng.uniform(0.25, 0.6) * face.height
        for point in (landmarks[5], landmarks[11]):
            pen.stroke(ink, np.array([point, point + [rng.normal(0, 2), length]]), rng)
    return 1.0 - deform_relative_to_photo(ink, rng).astype(np.float32) / 255.0


def _choose(rng: np.random.Generator, weights: dict[str, float]) -> str:
    names = list(weights)
    probabilities = np.array([weights[name] for name in names])
    return names[int(rng.choice(len(names), p=probabilities / probabilities.sum()))]


class Pen:
    """A mouse-drawn line: a base width, a width that swells and thins along the stroke, a slow
    sideways wobble and a little jitter."""

    def __init__(self, width: float, unevenness: float, wobble: float, jitter: float):
        self.width, self.unevenness, self.wobble, self.jitter = width, unevenness, wobble, jitter

    @classmethod
    def random(cls, rng: np.random.Generator) -> "Pen":
        width = float(rng.choice([1, 1.5, 2, 2.5, 3, 4, 5, 6], p=[0.1, 0.15, 0.2, 0.15, 0.15, 0.12, 0.08, 0.05]))
        return cls(width, unevenness=rng.uniform(0.0, 0.5), wobble=rng.uniform(0.0, 2.5), jitter=rng.uniform(0.0, 0.5))

    def stroke(self, ink: np.ndarray, points: np.ndarray, rng: np.random.Generator, closed: bool = False) -> None:
        points = np.asarray(points, np.float64)
        if closed:
            points = np.vstack([points, points[:1]])
        path = _resample(points, spacing=2.0)
        if len(path) < 2:
            return
        tangent = np.gradient(path, axis=0)
        normal = np.stack([-tangent[:, 1], tangent[:, 0]], 1) / np.maximum(np.linalg.norm(tangent, axis=1, keepdims=True), 1e-6)
        along = np.linspace(0.0, 1.0, len(path)) * len(path) / 40.0  # a wobble every ~80 px
        phases = rng.uniform(0, 2 * np.pi, 4)
        sideways = self.wobble * (0.7 * np.sin(2 * np.pi * along + phases[0]) + 0.3 * np.sin(4.3 * np.pi * along + phases[1]))
        path = path + normal * sideways[:, None] + rng.normal(0.0, self.jitter, path.shape)
        widths = self.width * (1.0 + self.unevenness * np.sin(2 * np.pi * along * 0.7 + phases[2]))
        fixed = np.round(path * 4).astype(np.int32)  # 2 fractional bits (shift=2)
        for index in range(len(fixed) - 1):
            thickness = max(1, int(round(widths[index])))
            cv2.line(ink, tuple(map(int, fixed[index])), tuple(map(int, fixed[index + 1])), 255, thickness, cv2.LINE_AA, shift=2)

    def dot(self, ink: np.ndarray, centre: np.ndarray, radius: float) -> None:
        cv2.circle(ink, tuple(int(v) for v in np.round(np.asarray(centre) * 4)), max(4, int(round(radius * 4))), 255, -1,
                   cv2.LINE_AA, shift=2)

    def draw_mask(self, ink: np.ndarray, lines: np.ndarray) -> None:
        """Thin line pixels (e.g. edge maps) drawn at this pen's width."""
        pen = int(round(self.width))
        if pen > 1:
            lines = cv2.dilate(lines, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (pen, pen)))
        np.maximum(ink, lines, out=ink)


def _resample(points: np.ndarray, spacing: float) -> np.ndarray:
    """Points every ``spacing`` pixels along the polyline."""
    lengths = np.linalg.norm(np.diff(points, axis=0), axis=1)
    distance = np.concatenate([[0.0], np.cumsum(lengths)])
    if distance[-1] < 1e-6:
        return points[:1]
    samples = np.linspace(0.0, distance[-1], max(2, int(np.ceil(distance[-1] / spacing)) + 1))
    return np.stack([np.interp(samples, distance, points[:, axis]) for axis in (0, 1)], 1)


def _bezier(start: np.ndarray, control: np.ndarray, end: np.ndarray, samples: int = 24) -> np.ndarray:
    t = np.linspace(0.0, 1.0, samples)[:, None]
    return (1 - t) ** 2 * np.asarray(start) + 2 * (1 - t) * t * np.asarray(control) + t**2 * np.asarray(end)


class FaceGeometry:
    """Where the parts of a face are, from dlib's 68 landmarks (canvas pixels)."""

    def __init__(self, landmarks: np.ndarray):
        self.landmarks = np.asarray(landmarks, np.float64)
        marks = self.landmarks
        self.chin = marks[8]
        self.brow_y = float(marks[17:27, 1].min())
        self.centre_x = float((marks[0, 0] + marks[16, 0]) / 2)
        self.width = float(max(np.linalg.norm(marks[16] - marks[0]), 1.0))
        self.height = float(max(self.chin[1] - self.brow_y, 1.0))  # brows to chin
        self.eyes = (marks[36:42].mean(0), marks[42:48].mean(0))
        self.eye_width = float(max(np.linalg.norm(marks[39] - marks[36]), np.linalg.norm(marks[45] - marks[42]), 2.0))

    def oval(self, rng: np.random.Generator) -> np.ndarray:
        """The whole head as one closed curve: the jaw, then an arc over the forehead."""
        jaw = _smooth_polyline(self.landmarks[0:17], closed=False)
        top = self.brow_y - rng.uniform(0.35, 0.7) * self.height
        centre_y = (self.landmarks[0, 1] + self.landmarks[16, 1]) / 2
        angles = np.linspace(0.0, np.pi, 24)[1:-1]  # from the right temple over to the left
        half_width = self.width / 2 * rng.uniform(0.95, 1.1)
        arc = np.stack([self.centre_x + half_width * np.cos(angles), centre_y - (centre_y - top) * np.sin(angles)], 1)
        return np.vstack([jaw, arc])


def hair_region(photo: np.ndarray, face: FaceGeometry) -> np.ndarray:
    """bool (H, W): the hair, as pixels around the head that look neither like the background (the
    top corners) nor like the skin (the cheeks); a cap over the forehead when too little is found."""
    height, width = photo.shape[:2]
    lab = cv2.cvtColor(photo, cv2.COLOR_RGB2LAB).astype(np.float32)
    corner = max(4, width // 12)
    background = np.median(np.concatenate([lab[:corner, :corner].reshape(-1, 3), lab[:corner, -corner:].reshape(-1, 3)]), 0)
    marks = face.landmarks
    cheeks = [((marks[2] + marks[31]) / 2), ((marks[14] + marks[35]) / 2)]
    patch = max(2, int(face.width / 16))
    skin = np.median(np.concatenate([lab[max(0, int(y) - patch) : int(y) + patch, max(0, int(x) - patch) : int(x) + patch].reshape(-1, 3)
                                     for x, y in cheeks]), 0)
    ys, xs = np.mgrid[0:height, 0:width]
    around_head = (np.abs(xs - face.centre_x) < 0.95 * face.width) & (ys > face.brow_y - 1.2 * face.height) \
        & (ys < face.chin[1])
    # Below the mouth only beside the face: the neck and the collar are not hair.
    around_head &= (ys < marks[48:55, 1].mean()) | (np.abs(xs - face.centre_x) > 0.4 * face.width)
    inner_face = np.zeros((height, width), np.uint8)
    forehead = marks[17:27] - [0.0, 0.12 * face.height]
    cv2.fillConvexPoly(inner_face, cv2.convexHull(np.round(np.vstack([marks[0:17], forehead])).astype(np.int32)), 1)
    unlike_background = np.linalg.norm(lab - background, axis=2) > 20
    unlike_skin = np.linalg.norm(lab - skin, axis=2) > 24
    hair = (around_head & unlike_background & unlike_skin & (inner_face == 0)).astype(np.uint8)
    hair = cv2.morphologyEx(hair, cv2.MORPH_OPEN, np.ones((3, 3), np.uint8))
    hair = cv2.morphologyEx(hair, cv2.MORPH_CLOSE, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (9, 9)))
    count, labels, stats, _ = cv2.connectedComponentsWithStats(hair, connectivity=8)
    above_brows = [label for label in range(1, count) if stats[label, cv2.CC_STAT_TOP] < face.brow_y]
    if above_brows:
        largest = max(above_brows, key=lambda label: stats[label, cv2.CC_STAT_AREA])
        if stats[largest, cv2.CC_STAT_AREA] > 0.08 * face.width * face.height:
            return labels == largest
    cap = np.zeros((height, width), np.uint8)
    centre = (int(round(face.centre_x)), int(round(face.brow_y + 0.15 * face.height)))
    cv2.ellipse(cap, centre, (int(0.6 * face.width), int(0.75 * face.height)), 0, 180, 360, 1, -1)
    return (cap > 0) & (inner_face == 0)


def _top_boundary(region: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For every column the region covers, its topmost row."""
    columns = np.nonzero(region.any(0))[0]
    return columns.astype(np.float64), region[:, columns].argmax(0).astype(np.float64)


def _outline_points(region: np.ndarray) -> np.ndarray:
    contours, _ = cv2.findContours(region.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
    if not contours:
        return np.zeros((0, 2))
    largest = max(contours, key=cv2.contourArea)
    return cv2.approxPolyDP(largest, 1.5, True)[:, 0].astype(np.float64)


def _hair_outline(ink, region, face, pen, rng) -> None:
    outline = _outline_points(region)
    if len(outline) >= 3:
        pen.stroke(ink, outline, rng, closed=True)


def _hair_spikes(ink, region, face, pen, rng) -> None:
    xs, tops = _top_boundary(region)
    if len(xs) < 4:
        return
    count = int(rng.integers(5, 13))
    bases = np.linspace(xs[0], xs[-1], count + 1)
    height = rng.uniform(0.08, 0.25) * face.height
    points = []
    for left, right in zip(bases[:-1], bases[1:]):
        points.append([left, np.interp(left, xs, tops) + 0.05 * height])
        tip_x = (left + right) / 2 + rng.normal(0, 0.15) * (right - left)
        points.append([tip_x, np.interp(tip_x, xs, tops) - height * rng.uniform(0.6, 1.2)])
    points.append([bases[-1], np.interp(bases[-1], xs, tops) + 0.05 * height])
    pen.stroke(ink, np.array(points), rng)
    if rng.random() < 0.6:  # the sides: the hair's outer edge from the temples down
        centre = int(round(face.centre_x))
        for side in (-1, 1):
            half = region[:, :centre] if side < 0 else region[:, centre:]
            rows = np.nonzero(half.any(1))[0]
            rows = rows[rows > face.brow_y - 0.3 * face.height][::4]
            if len(rows) < 2:
                continue
            edge = half[rows].argmax(1) if side < 0 else centre + half.shape[1] - 1 - half[rows, ::-1].argmax(1)
            pen.stroke(ink, np.stack([edge, rows], 1).astype(np.float64), rng)


def _hair_strands(ink, region, face, pen, rng) -> None:
    """Curves that fall from a parting over the crown to the edge of the hair."""
    outline = _outline_points(region)
    xs, tops = _top_boundary(region)
    if len(outline) < 3 or len(xs) < 4:
        return
    parting_x = face.centre_x + rng.normal(0, 0.15) * face.width
    parting = np.array([parting_x, np.interp(parting_x, xs, tops) + 2.0])
    ends = outline[outline[:, 1] > face.brow_y - 0.4 * face.height]
    if len(ends) == 0:
        return
    for end in ends[rng.choice(len(ends), size=min(len(ends), int(rng.integers(4, 11))), replace=False)]:
        start = parting + [rng.normal(0, 0.08 * face.width), 0.0]
        outward = np.sign(end[0] - start[0]) or 1.0
        control = (start + end) / 2 + [outward * rng.uniform(0.1, 0.3) * face.width, -rng.uniform(0.1, 0.3) * face.height]
        pen.stroke(ink, _bezier(start, control, end), rng)


def _hair_scribble(ink, region, face, pen, rng) -> None:
    """A loopy back-and-forth line that stays inside the hair."""
    ys, xs = np.nonzero(region)
    if len(xs) < 10:
        return
    index = int(rng.integers(len(xs)))
    position = np.array([xs[index], ys[index]], np.float64)
    heading, turning = rng.uniform(0, 2 * np.pi), 0.0
    step = rng.uniform(3.0, 6.0)
    points = [position.copy()]
    for _ in range(int(np.clip(len(xs) / (step * rng.uniform(6, 14)), 30, 600))):
        turning = 0.8 * turning + rng.normal(0, 0.35)
        heading += turning
        following = position + step * np.array([np.cos(heading), np.sin(heading)])
        x, y = int(round(following[0])), int(round(following[1]))
        if not (0 <= y < region.shape[0] and 0 <= x < region.shape[1] and region[y, x]):
            heading += np.pi + rng.normal(0, 0.5)  # bounce back inside
            continue
        position = following
        points.append(position.copy())
    if len(points) >= 2:
        pen.stroke(ink, np.array(points), rng)


# How often each shape is drawn (part styles: name -> weight).
HAIR_STYLES = {"strands": 0.28, "spikes": 0.22, "scribble": 0.22, "outline": 0.28}
EYE_STYLES = {"dots": 0.3, "almonds": 0.3, "outline": 0.2, "circles": 0.2}
NOSE_STYLES = {"L": 0.35, "dots": 0.2, "lines": 0.25, "hook": 0.2}
MOUTH_STYLES = {"line": 0.3, "smile": 0.35, "lips": 0.35}
_HAIR_DRAWINGS = {"strands": _hair_strands, "spikes": _hair_spikes, "scribble": _hair_scribble, "outline": _hair_outline}


def draw_hair(ink: np.ndarray, photo: np.ndarray, face: FaceGeometry, pen: Pen, rng: np.random.Generator,
              style: str | None = None) -> None:
    """Hair in one of HAIR_STYLES (random when None), within the photo's hair region."""
    _HAIR_DRAWINGS[_style(rng, HAIR_STYLES, style)](ink, hair_region(photo, face), face, pen, rng)


def _style(rng: np.random.Generator, weights: dict[str, float], style: str | None) -> str:
    if style is None:
        return _choose(rng, weights)
    if style not in weights:
        raise ValueError(f"unknown part style {style!r}; choose from {sorted(weights)}")
    return style


def draw_eyes(ink: np.ndarray, face: FaceGeometry, pen: Pen, rng: np.random.Generator, style: str | None = None) -> None:
    """Both eyes in one of EYE_STYLES (random when None)."""
    style = _style(rng, EYE_STYLES, style)
    pupils = rng.random() < 0.7
    for first, centre in ((36, face.eyes[0]), (42, face.eyes[1])):
        marks = face.landmarks[first : first + 6] + rng.normal(0, 0.8, (6, 2))
        if style == "dots":
            pen.dot(ink, centre + rng.normal(0, 0.8, 2), rng.uniform(1.5, 3.5) + pen.width / 2)
            continue
        if style == "almonds":
            lift = rng.uniform(0.15, 0.3) * face.eye_width
            upper = _bezier(marks[0], (marks[1] + marks[2]) / 2 - [0.0, lift], marks[3])
            lower = _bezier(marks[3], (marks[4] + marks[5]) / 2 + [0.0, 0.6 * lift], marks[0])
            pen.stroke(ink, np.vstack([upper, lower]), rng)
        elif style == "outline":
            pen.stroke(ink, _smooth_polyline(marks, closed=True), rng, closed=True)
        else:
            radius = face.eye_width * rng.uniform(0.3, 0.45)
            angles = np.linspace(0, 2 * np.pi, 20)
            pen.stroke(ink, centre + radius * np.stack([np.cos(angles), np.sin(angles)], 1), rng)
        if pupils:
            pen.dot(ink, centre + rng.normal(0, 0.6, 2), rng.uniform(1.2, 3.0))


def draw_nose(ink: np.ndarray, face: FaceGeometry, pen: Pen, rng: np.random.Generator, style: str | None = None) -> None:
    """The nose in one of NOSE_STYLES (random when None)."""
    marks = face.landmarks
    style = _style(rng, NOSE_STYLES, style)
    if style == "L":
        side = 31 if rng.random() < 0.5 else 35
        top = marks[27 + int(rng.integers(0, 2))] + rng.normal(0, 1.0, 2)
        corner = np.array([top[0] + rng.normal(0, 1.0), marks[33, 1] + rng.normal(0, 1.0)])
        pen.stroke(ink, np.array([top, corner, [marks[side, 0], corner[1] - rng.uniform(0, 3)]]), rng)
    elif style == "dots":
        for nostril in (marks[32], marks[34]):
            pen.dot(ink, nostril + rng.normal(0, 0.8, 2), rng.uniform(1.0, 2.5))
    elif style == "lines":
        pen.stroke(ink, _smooth_polyline(marks[27:31] + rng.normal(0, 0.8, (4, 2)), closed=False), rng)
        pen.stroke(ink, _smooth_polyline(marks[31:36] + rng.normal(0, 0.8, (5, 2)), closed=False), rng)
    else:  # a hook: the base of the nose only
        pen.stroke(ink, _bezier(marks[31], marks[33] + [0.0, rng.uniform(1, 4)], marks[35]), rng)


def draw_mouth(ink: np.ndarray, face: FaceGeometry, pen: Pen, rng: np.random.Generator, style: str | None = None) -> None:
    """The mouth in one of MOUTH_STYLES (random when None)."""
    marks = face.landmarks
    style = _style(rng, MOUTH_STYLES, style)
    left, right = marks[48] + rng.normal(0, 1.0, 2), marks[54] + rng.normal(0, 1.0, 2)
    middle = (marks[62] + marks[66]) / 2
    if style == "line":
        pen.stroke(ink, _bezier(left, 2 * middle - (left + right) / 2, right), rng)
    elif style == "smile":
        dip = rng.uniform(0.02, 0.08) * face.height
        pen.stroke(ink, _bezier(left, 2 * (middle + [0.0, dip]) - (left + right) / 2, right), rng)
    else:
        pen.stroke(ink, _smooth_polyline(marks[48:60] + rng.normal(0, 0.8, (12, 2)), closed=True), rng, closed=True)
        if rng.random() < 0.5:
            pen.stroke(ink, _bezier(left, 2 * middle - (left + right) / 2, right), rng)


def deform_relative_to_photo(ink: np.ndarray, rng: np.random.Generator, amplitude: float | None = None) -> np.ndarray:
    """Move the drawing a little against the photo: a smooth random warp plus a small shift,
    scale and turn (``amplitude``: the largest displacement in pixels, default 2-10), so the
    lines land near, not on, the photo's edges and the generator learns to put a face under
    them rather than to paint them onto the skin. The ink never leaves the image: the
    displacement is scaled down to fit the margin around the drawing."""
    height, width = ink.shape
    ys, xs = np.nonzero(ink)
    if len(xs) == 0:
        return ink
    amplitude = rng.uniform(2.0, 10.0) if amplitude is None else amplitude
    margin = min(xs.min(), ys.min(), width - 1 - xs.max(), height - 1 - ys.max()) - 2.0  # bilinear spreads a pixel
    amplitude = min(amplitude, max(margin, 0.0))
    if amplitude <= 0.0:
        return ink
    # Smooth field: a coarse random grid (a few cells per face) resized up bicubically.
    field = rng.normal(0.0, 1.0, size=(2, 4, 3)).astype(np.float32)
    dx, dy = (cv2.resize(component, (width, height), interpolation=cv2.INTER_CUBIC) for component in field)
    grid_x, grid_y = np.meshgrid(np.arange(width, dtype=np.float32), np.arange(height, dtype=np.float32))
    centre_x, centre_y = xs.mean(), ys.mean()
    scale, angle = rng.uniform(-0.04, 0.04), rng.uniform(-0.05, 0.05)  # relative, and radians
    dx = dx + scale * (grid_x - centre_x) - angle * (grid_y - centre_y) + rng.normal(0, 1.0)
    dy = dy + scale * (grid_y - centre_y) + angle * (grid_x - centre_x) + rng.normal(0, 1.0)
    largest = max(float(np.abs(dx[ys, xs]).max()), float(np.abs(dy[ys, xs]).max()), 1e-6)
    dx, dy = dx * (amplitude / largest), dy * (amplitude / largest)
    # remap reads the source at (x + dx, y + dy): ink at p lands near p - d(p), at most
    # ``amplitude`` away, so within the margin.
    map_x, map_y = (grid + shift for grid, shift in ((grid_x, dx), (grid_y, dy)))
    return cv2.remap(ink, map_x.astype(np.float32), map_y.astype(np.float32), cv2.INTER_LINEAR, borderValue=0)


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


PHOTO_STYLES = {"pencil": pencil, "xdog": xdog, "edges": edges, "doodle": doodle}


def make_sketch(style: str, photo: np.ndarray, rng: np.random.Generator, landmarks: np.ndarray | None = None) -> np.ndarray:
    if style not in PHOTO_STYLES:
        raise ValueError(f"unknown sketch style {style!r}; choose from {sorted(PHOTO_STYLES)}")
    if style == "doodle":
        return doodle(photo, rng, landmarks)
    return PHOTO_STYLES[style](photo, rng)
