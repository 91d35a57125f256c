"""Training data, read from the shared data folder at run time (nothing is copied into the repo).

Sources (see ../shared/data/README.md):
- CUFS train: 88 photo/sketch pairs, already aligned; we add synthetic styles of the photos.
- Frontal face photos (london_neutral, 3dsk, composite), aligned to the canvas by their pupils
  (faces/eyes.csv), and london_smiling, which has no pupils there, by dlib's 68 landmarks;
  their sketches are synthetic.

Never used for training: cufs/test (the benchmark), faces/canada (held out) and eval/.
Every pair goes through :func:`sketch2face.preprocess.normalise`, the same code that serves
user drawings, and the photo is warped by the same framing transform, in one resampling, at the
generator's output size (``output_scale`` x the canvas). Each pair carries the five face points
of its photo (for the identity loss) through that same geometry.
"""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass, replace
from pathlib import Path
from typing import NamedTuple

import cv2
import numpy as np
import torch
from torch.utils.data import Dataset

from .. import preprocess
from . import styles
from ..errors import InputError
from ..landmarks import LandmarkDetector, five_points
from ..preprocess import CANVAS_EYES, CANVAS_SIZE, similarity_transform
from ..tensors import image_to_tensor
from .shared_models import DATA_ENV, shared_folder

HELD_OUT = ("cufs/test", "faces/canada", "eval")
TRAIN_FACE_FOLDERS = ("london_neutral", "3dsk", "composite")
LANDMARK_ALIGNED_FOLDERS = ("london_smiling",)  # no pupils in eyes.csv: aligned by dlib's landmarks
CUFS_SIZE = (200, 250)


def default_data_root() -> Path:
    return shared_folder("data", DATA_ENV)


def _refuse_held_out(path: Path, root: Path, allow_held_out: bool) -> None:
    relative = path.resolve().relative_to(root.resolve()).as_posix()
    if not allow_held_out and any(relative == part or relative.startswith(part + "/") for part in HELD_OUT):
        raise ValueError(f"{relative} is held out for evaluation and must never be used for training")


@dataclass
class FaceRecord:
    name: str
    photo: np.ndarray  # uint8 (H, W, 3) RGB on the canvas framing
    sketch: np.ndarray | None = None  # float32 (H, W) artist sketch, when there is one
    landmarks: np.ndarray | None = None  # (68, 2) canvas coordinates, for the doodle style and the five points
    photo_full: np.ndarray | None = None  # the same framing at 2x the canvas size, from the original photo
    learned_sketch: np.ndarray | None = None  # float32 (H, W): an artist-style sketch drawn by the sketcher (artist_sketches)


def output_size(output_scale: int) -> tuple[int, int]:
    """(width, height) of the generator's output: the canvas times ``output_scale``."""
    return CANVAS_SIZE[0] * output_scale, CANVAS_SIZE[1] * output_scale


def canvas_to_output(output_scale: int) -> np.ndarray:
    """3x3 map from canvas pixels to output pixels (pixel centres stay centres, as cv2.resize)."""
    return np.array([[output_scale, 0.0, (output_scale - 1) / 2], [0.0, output_scale, (output_scale - 1) / 2],
                     [0.0, 0.0, 1.0]])


def _as3x3(matrix: np.ndarray) -> np.ndarray:
    return np.vstack([matrix, [0.0, 0.0, 1.0]])


def transform_points(matrix: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Apply a 2x3 or 3x3 affine to (N, 2) points."""
    return (points @ matrix[:2, :2].T + matrix[:2, 2]).astype(np.float32)


MIRRORED_FIVE_POINTS = [1, 0, 2, 4, 3]  # after a horizontal flip the left eye is the right one


def read_rgb(path: Path) -> np.ndarray:
    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if image is None:
        raise FileNotFoundError(path)
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


def cufs_to_canvas(image: np.ndarray) -> np.ndarray:
    """CUFS images are 200x250 in the canonical framing: the canvas is the same frame x1.28."""
    return cv2.resize(image, CANVAS_SIZE, interpolation=cv2.INTER_CUBIC)


def is_cufs_validation(index: int, validation_every: int) -> bool:
    """Whether the index-th CUFS train pair (in file-name order) is kept out of training when every
    ``validation_every``-th one is (0: none is). Choosing on pairs the candidate never saw is what
    tells generalising from memorising the 88 train people."""
    return validation_every > 0 and index % validation_every == validation_every - 1


def load_cufs(split: str, root: Path | None = None, allow_held_out: bool = False, limit: int | None = None,
              output_scale: int = 1, validation_every: int = 0) -> list[FaceRecord]:
    """``validation_every``: leave out the pairs :func:`is_cufs_validation` keeps for choosing."""
    root = root or default_data_root()
    folder = root / "cufs" / split
    _refuse_held_out(folder, root, allow_held_out)
    records = []
    photo_paths = sorted((folder / "photos").glob("*.jpg"))
    photo_paths = [path for index, path in enumerate(photo_paths) if not is_cufs_validation(index, validation_every)]
    for photo_path in photo_paths[:limit]:
        sketch_path = folder / "sketches" / photo_path.name
        sketch = cv2.cvtColor(read_rgb(sketch_path), cv2.COLOR_RGB2GRAY).astype(np.float32) / 255.0
        photo = read_rgb(photo_path)
        full = cv2.resize(photo, output_size(output_scale), interpolation=cv2.INTER_CUBIC) if output_scale > 1 else None
        records.append(
            FaceRecord(
                name=f"cufs/{split}/{photo_path.stem}",
                photo=cufs_to_canvas(photo),
                sketch=cufs_to_canvas(sketch),
                photo_full=full,
            )
        )
    return records


def eye_alignment(left_eye: tuple[float, float], right_eye: tuple[float, float]) -> np.ndarray:
    """Similarity transform (2x3) taking the two pupils (image left, image right) to CANVAS_EYES."""
    return similarity_transform([left_eye, right_eye], CANVAS_EYES)


def _aligned(photo: np.ndarray, matrix: np.ndarray, output_scale: int) -> tuple[np.ndarray, np.ndarray | None]:
    """The photo on the canvas and, for output_scale > 1, at the output size from the original pixels."""
    canvas = cv2.warpAffine(photo, matrix, CANVAS_SIZE, flags=cv2.INTER_AREA, borderMode=cv2.BORDER_REPLICATE)
    if output_scale == 1:
        return canvas, None
    full = cv2.warpAffine(photo, (canvas_to_output(output_scale) @ _as3x3(matrix))[:2], output_size(output_scale),
                          flags=cv2.INTER_CUBIC, borderMode=cv2.BORDER_REPLICATE)
    return canvas, full


def load_faces(
    folders: tuple[str, ...] = TRAIN_FACE_FOLDERS,
    root: Path | None = None,
    allow_held_out: bool = False,
    limit: int | None = None,
    output_scale: int = 1,
) -> list[FaceRecord]:
    """Frontal photos with pupil coordinates, aligned to the canvas."""
    root = root or default_data_root()
    records = []
    with open(root / "faces" / "eyes.csv", newline="") as handle:
        rows = [row for row in csv.DictReader(handle) if row["file"].split("/")[0] in folders]
    for row in rows[:limit]:
        path = root / "faces" / row["file"]
        _refuse_held_out(path, root, allow_held_out)
        first = (float(row["eye1_x"]), float(row["eye1_y"]))
        second = (float(row["eye2_x"]), float(row["eye2_y"]))
        left, right = sorted([first, second])
        photo, full = _aligned(read_rgb(path), eye_alignment(left, right), output_scale)
        records.append(FaceRecord(name=f"faces/{row['file']}", photo=photo, photo_full=full))
    return records


class TrainingLandmarks:
    """dlib's 68 landmarks of the training photos, looked up by record name.

    dlib finds them, unless a file that :meth:`save` wrote holds them. That file lets a machine
    without dlib and its 100 MB models (a lent GPU) train on exactly the landmarks found here.
    Each record asks once, for the image its landmarks are measured on: the original photo for
    london_smiling (they align it), the canvas photo for the rest."""

    def __init__(self, saved: dict[str, list | None] | None = None, detector: "LandmarkDetector | None" = None):
        self.found: dict[str, np.ndarray | None] = {
            name: None if points is None else np.asarray(points, np.float32) for name, points in (saved or {}).items()}
        self.from_file = saved is not None
        self._detector = detector

    @classmethod
    def read(cls, path: Path) -> "TrainingLandmarks":
        return cls(json.loads(Path(path).read_text())["landmarks"])

    def save(self, path: Path) -> None:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        landmarks = {name: None if points is None else points.tolist() for name, points in sorted(self.found.items())}
        path.write_text(json.dumps({"what": "dlib 68-point landmarks of sketch2face's training photos, by record name",
                                    "landmarks": landmarks}))

    def __call__(self, name: str, image: np.ndarray) -> np.ndarray | None:
        if name in self.found:
            return self.found[name]
        if self.from_file:
            raise ValueError(f"{name} has no landmarks in the landmarks file: write it again where dlib is installed "
                             "(train --landmarks-file PATH on a new PATH)")
        if self._detector is None:
            self._detector = LandmarkDetector()
        self.found[name] = self._detector(image)
        return self.found[name]


def load_landmark_aligned_faces(
    folders: tuple[str, ...] = LANDMARK_ALIGNED_FOLDERS,
    root: Path | None = None,
    limit: int | None = None,
    output_scale: int = 1,
    landmarks: TrainingLandmarks | None = None,
) -> list[FaceRecord]:
    """Frontal photos without pupil coordinates (london_smiling): dlib finds the 68 landmarks on
    the original photo, the eye centres align it to the canvas, and the landmarks come along.
    Photos where dlib finds no face are left out."""
    root = root or default_data_root()
    landmarks = landmarks or TrainingLandmarks()
    records = []
    for folder in folders:
        for path in sorted((root / "faces" / folder).glob("*.jpg"))[:limit]:
            _refuse_held_out(path, root, allow_held_out=False)
            original = read_rgb(path)
            name = f"faces/{folder}/{path.name}"
            found = landmarks(name, original)
            if found is None:
                continue
            matrix = eye_alignment(tuple(found[36:42].mean(0)), tuple(found[42:48].mean(0)))
            photo, full = _aligned(original, matrix, output_scale)
            records.append(FaceRecord(name=name, photo=photo, landmarks=transform_points(matrix, found), photo_full=full))
    return records


def _found_by_dlib() -> TrainingLandmarks | None:
    """Landmarks that dlib finds, or None where dlib or its models are not installed."""
    try:
        return TrainingLandmarks(detector=LandmarkDetector())
    except ImportError:
        return None


def add_landmarks(records: list[FaceRecord], landmarks: TrainingLandmarks | None = None) -> int:
    """Fill in landmarks where dlib (or ``landmarks``' file) finds a face; returns how many were found."""
    landmarks = landmarks or _found_by_dlib()
    if landmarks is None:
        return 0  # the doodle style then draws outer contours only
    found = 0
    for record in records:
        if record.landmarks is None:  # london_smiling brings its own
            record.landmarks = landmarks(record.name, record.photo)
        found += record.landmarks is not None
    return found


# Style mix: CUFS items keep their artist sketch often; everything else is synthetic, with the
# mouse-doodle style weighted up because it is what people really draw.
CUFS_STYLE_WEIGHTS = {"artist": 0.4, "doodle": 0.25, "edges": 0.1, "xdog": 0.1, "pencil": 0.15}
PHOTO_STYLE_WEIGHTS = {"doodle": 0.4, "edges": 0.2, "xdog": 0.2, "pencil": 0.2}
LEARNED_ARTIST = "learned_artist"  # the style of a record's learned_sketch


def parse_style_mix(text: str) -> dict[str, float]:
    """``"doodle=0.7,edges=0.3"`` -> {"doodle": 0.7, "edges": 0.3}: the styles a training run draws,
    and how often (relative weights). ``artist`` is a CUFS pair's own sketch."""
    known = sorted(CUFS_STYLE_WEIGHTS)
    mix = {}
    for part in (piece.strip() for piece in text.split(",") if piece.strip()):
        name, equals, weight = part.partition("=")
        name = name.strip()
        if name not in CUFS_STYLE_WEIGHTS:
            raise ValueError(f"style mix {text!r}: unknown style {name!r}; choose from {known}")
        try:
            mix[name] = float(weight) if equals else 1.0
        except ValueError:
            raise ValueError(f"style mix {text!r}: {weight!r} is not a number (write style=weight)") from None
        if not 0.0 <= mix[name] < float("inf"):
            raise ValueError(f"style mix {text!r}: the weight of {name!r} must be a finite number, at least 0")
    if not any(weight > 0 for name, weight in mix.items() if name != "artist"):
        raise ValueError(f"style mix {text!r}: give at least one drawn style ({sorted(PHOTO_STYLE_WEIGHTS)}) a weight above 0, "
                         "or photos without an artist sketch would have nothing to draw")
    return mix


FACE_MARGIN_PX = 6  # skin just outside the landmarks: dlib's identity crop sees it too (canvas pixels)


def face_mask(landmarks: np.ndarray | None, shape: tuple[int, int], margin: int = FACE_MARGIN_PX) -> np.ndarray:
    """float32 (H, W): 1 on the inner face (hull of the 68 landmarks, brows to chin), else 0."""
    mask = np.zeros(shape, np.uint8)
    if landmarks is not None:
        cv2.fillConvexPoly(mask, cv2.convexHull(np.round(landmarks).astype(np.int32)), 1)
        size = 2 * margin + 1
        mask = cv2.dilate(mask, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (size, size)))
    return mask.astype(np.float32)


class TrainingPair(NamedTuple):
    sketch: np.ndarray  # float32 (H, W) canvas, 1 = paper
    photo: np.ndarray  # uint8 (h, W, 3) RGB at the output size, aligned with the sketch
    face_mask: np.ndarray  # float32 (h, w) at the output size, see face_mask(); all 0 without landmarks
    five_points: np.ndarray | None = None  # float32 (5, 2) in the photo's pixels, see landmarks.five_points(); None without landmarks


def make_training_pair(record: FaceRecord, style: str, rng: np.random.Generator, augment: bool = True,
                       output_scale: int = 1, pair_warp_px: float = 0.0,
                       photo_resample: str = "linear") -> TrainingPair:
    """One (sketch, photo, face mask, five points) sample through the serving preprocessing; the
    photo, its mask and its points at ``output_scale`` x the canvas size. ``pair_warp_px`` > 0 bends
    an artist pair first (:func:`warp_pair`). ``photo_resample``: a key of PHOTO_RESAMPLING."""
    if style == "artist":
        if pair_warp_px > 0:
            record = warp_pair(record, rng, pair_warp_px)
        sketch = record.sketch
    elif style == LEARNED_ARTIST:
        sketch = record.learned_sketch
    else:
        sketch = styles.make_sketch(style, record.photo, rng, record.landmarks)
    geometry, flipped = np.eye(3), False  # record canvas -> sample canvas, as the sketch moves
    if augment:
        sketch, geometry, flipped = _augment(sketch, rng, wide=style == "doodle")
    try:
        normalised = preprocess.normalise(sketch.astype(np.float32))
        sketch, geometry = normalised.canvas, _as3x3(normalised.to_canvas) @ geometry
    except InputError:  # a style that erased nearly everything: keep the plain framing
        sketch = sketch.astype(np.float32)
    photo, mask = _photo_at_output(record, geometry, output_scale, PHOTO_RESAMPLING[photo_resample])
    points = None
    if record.landmarks is not None:
        points = five_points(record.landmarks).astype(np.float32)[MIRRORED_FIVE_POINTS if flipped else slice(None)]
        points = transform_points(canvas_to_output(output_scale) @ geometry, points)
    return TrainingPair(sketch, photo, mask, points)


def smooth_displacement(shape: tuple[int, int], rng: np.random.Generator, amplitude_px: float,
                        control_points: tuple[int, int] = (4, 5)) -> np.ndarray:
    """float32 (H, W, 2) (dx, dy): a random shift of at most ``amplitude_px`` at each of a coarse
    grid of control points (columns, rows), interpolated bicubically: features tens of pixels
    apart move apart or together, so a face changes shape without folding."""
    columns, rows = control_points
    coarse = rng.uniform(-amplitude_px, amplitude_px, size=(rows, columns, 2)).astype(np.float32)
    return cv2.resize(coarse, (shape[1], shape[0]), interpolation=cv2.INTER_CUBIC)


def warp_pair(record: FaceRecord, rng: np.random.Generator, amplitude_px: float) -> FaceRecord:
    """The record's artist sketch, photo and landmarks bent by one smooth displacement, the same for
    all three: a face shape that none of the 88 CUFS people has, still a true sketch-photo pair.
    Identity and pixel terms then see more faces in the artists' style than there are people."""
    height, width = record.photo.shape[:2]
    displacement = smooth_displacement((height, width), rng, amplitude_px)
    grid_x, grid_y = np.meshgrid(np.arange(width, dtype=np.float32), np.arange(height, dtype=np.float32))
    map_x, map_y = grid_x + displacement[..., 0], grid_y + displacement[..., 1]  # output pixel reads input there

    def bend(image: np.ndarray, paper: float | None = None) -> np.ndarray:
        # The photo's edge colour carries on; the sketch's paper is blank.
        border = (dict(borderMode=cv2.BORDER_REPLICATE) if paper is None
                  else dict(borderMode=cv2.BORDER_CONSTANT, borderValue=paper))
        return cv2.remap(image, map_x, map_y, cv2.INTER_LINEAR, **border)

    landmarks = None
    if record.landmarks is not None:
        # A feature at p lands where x + d(x) = p: solved by a few fixed-point steps (d is smooth and small).
        points = np.asarray(record.landmarks, dtype=np.float64)
        landmarks = points.copy()
        for _ in range(3):
            columns = np.clip(np.rint(landmarks[:, 0]).astype(int), 0, width - 1)
            rows = np.clip(np.rint(landmarks[:, 1]).astype(int), 0, height - 1)
            landmarks = points - displacement[rows, columns]
        landmarks = landmarks.astype(np.float32)
    sketch = None if record.sketch is None else bend(record.sketch, 1.0)
    # photo_full dropped: a 2x target is then made from the bent photo.
    return replace(record, photo=bend(record.photo), sketch=sketch, landmarks=landmarks, photo_full=None)


# The photo's resampling into a sample's frame. The shipped generators learned from "linear"
# targets, which a perfect generator could only copy at CUFS train KID x1000 78 (against 40 for
# "cubic", docs/training.md "The face's last resampling").
PHOTO_RESAMPLING = {"linear": cv2.INTER_LINEAR, "cubic": cv2.INTER_CUBIC}


def _photo_at_output(record: FaceRecord, geometry: np.ndarray, output_scale: int,
                     interpolation: int = cv2.INTER_LINEAR) -> tuple[np.ndarray, np.ndarray]:
    """The record's photo and face mask moved by ``geometry`` (canvas pixels), in one resampling
    from the sharpest photo there is: record.photo_full when the output is larger than the canvas."""
    to_output = canvas_to_output(output_scale)
    source, from_canvas = record.photo, np.eye(3)
    if output_scale > 1:
        source = record.photo_full if record.photo_full is not None and record.photo_full.shape[1::-1] == output_size(output_scale) \
            else cv2.resize(record.photo, output_size(output_scale), interpolation=cv2.INTER_CUBIC)
        from_canvas = to_output
    landmarks = None if record.landmarks is None else transform_points(from_canvas, record.landmarks)
    # The mask rides along as a fourth photo channel, so it gets exactly the photo's geometry.
    mask = np.rint(face_mask(landmarks, source.shape[:2], FACE_MARGIN_PX * output_scale) * 255).astype(np.uint8)
    photo = np.dstack([source, mask])
    matrix = to_output @ geometry @ np.linalg.inv(from_canvas)  # source pixels -> output pixels
    if output_scale == 1 and matrix[0, 1] == matrix[1, 0] == 0.0 and matrix[0, 0] > 0 and matrix[1, 1] > 0:
        # Area-averages a shrink, as serving does.
        photo = preprocess.warp_to_canvas(photo, matrix[:2], interpolation=interpolation)
    else:
        photo = cv2.warpAffine(photo, matrix[:2], output_size(output_scale), flags=interpolation,
                               borderMode=cv2.BORDER_REPLICATE)
    return np.ascontiguousarray(photo[..., :3]), photo[..., 3].astype(np.float32) / 255.0


def _augment(sketch: np.ndarray, rng: np.random.Generator, wide: bool = False) -> tuple[np.ndarray, np.ndarray, bool]:
    """A random flip, turn, scale and shift of the sketch; returns it, the 3x3 map from the old
    canvas pixels to the new ones, and whether it was flipped. ``wide``: the face at any size and
    place (mouse doodles are drawn anywhere on the pad, small or large)."""
    height, width = sketch.shape
    flipped = bool(rng.random() < 0.5)
    flip = np.array([[-1.0, 0.0, width - 1.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]]) if flipped else np.eye(3)
    angle = rng.uniform(-6.0, 6.0)
    scale = rng.uniform(0.55, 1.1) if wide else rng.uniform(0.85, 1.1)
    shift = rng.uniform(-30.0, 30.0, size=2) if wide else rng.uniform(-10.0, 10.0, size=2)
    matrix = cv2.getRotationMatrix2D((width / 2, height / 2), angle, scale)
    matrix[:, 2] += shift
    geometry = _as3x3(matrix) @ flip
    sketch = cv2.warpAffine(np.ascontiguousarray(sketch), geometry[:2], (width, height), borderValue=1.0)
    return sketch, geometry, flipped


class SketchPhotoDataset(Dataset):
    """Draws a fresh style and augmentation every time an item is read."""

    def __init__(self, records: list[FaceRecord], seed: int = 0, augment: bool = True,
                 artist_weight: float | None = None, cufs_repeats: int = 1, output_scale: int = 1,
                 identity_on_doodles: bool = True, l1_on_doodles: bool = True, learned_sketch_weight: float = 0.0,
                 style_mix: dict[str, float] | None = None, pair_warp_px: float = 0.0,
                 photo_resample: str = "linear"):
        """artist_weight: how often a CUFS item keeps its artist sketch (default CUFS_STYLE_WEIGHTS);
        cufs_repeats: how many times each CUFS item appears per epoch (the benchmark's style);
        output_scale: photos at this many times the canvas size (the generator's output);
        identity_on_doodles: False leaves mouse doodles out of G_identity (``identity_mask``);
        l1_on_doodles: False leaves them out of the pixel terms G_L1 and G_L1_face (``pixel_mask``);
        every item also says whether it is a mouse doodle (``doodle_mask``, for G_teacher);
        learned_sketch_weight: how often a photo with a learned_sketch is shown as that sketch;
        style_mix: only these styles, for every record ({style: weight}, :func:`parse_style_mix`),
        in place of the default mixes and artist_weight: a generator for one kind of drawing;
        pair_warp_px: > 0 bends each artist pair by a smooth field of at most that many px (:func:`warp_pair`);
        photo_resample: how the photo is resampled into the sample's frame (PHOTO_RESAMPLING)."""
        if pair_warp_px < 0:
            raise ValueError("pair_warp_px must be >= 0")
        if photo_resample not in PHOTO_RESAMPLING:
            raise ValueError(f"photo_resample must be one of {sorted(PHOTO_RESAMPLING)}, got {photo_resample!r}")
        self.pair_warp_px, self.photo_resample = pair_warp_px, photo_resample
        if not records:
            raise ValueError("no training records: is the data folder right?")
        if cufs_repeats < 1:
            raise ValueError("cufs_repeats must be at least 1")
        self.records = [repeat for record in records
                        for repeat in [record] * (cufs_repeats if record.sketch is not None else 1)]
        self.seed = seed
        self.augment = augment
        self.output_scale = output_scale
        self.identity_on_doodles = identity_on_doodles
        self.l1_on_doodles = l1_on_doodles
        self.cufs_weights = dict(CUFS_STYLE_WEIGHTS)
        if artist_weight is not None:
            if not 0.0 <= artist_weight <= 1.0:
                raise ValueError("artist_weight must be in [0, 1]")
            synthetic = 1.0 - CUFS_STYLE_WEIGHTS["artist"]
            self.cufs_weights = {name: (artist_weight if name == "artist" else weight * (1.0 - artist_weight) / synthetic)
                                 for name, weight in CUFS_STYLE_WEIGHTS.items()}
        if not 0.0 <= learned_sketch_weight <= 1.0:
            raise ValueError("learned_sketch_weight must be in [0, 1]")
        self.photo_weights = dict(PHOTO_STYLE_WEIGHTS)
        if style_mix is not None:
            self.cufs_weights = {name: weight for name, weight in style_mix.items() if weight > 0}
            self.photo_weights = {name: weight for name, weight in self.cufs_weights.items() if name != "artist"}
        self.learned_weights = {LEARNED_ARTIST: learned_sketch_weight,
                                **{name: weight * (1.0 - learned_sketch_weight) for name, weight in self.photo_weights.items()}}
        self._calls = 0

    def __len__(self) -> int:
        return len(self.records)

    def style_for(self, record: FaceRecord, rng: np.random.Generator) -> str:
        if record.sketch is not None:
            weights = self.cufs_weights
        else:
            weights = self.learned_weights if record.learned_sketch is not None else self.photo_weights
        names = list(weights)
        probabilities = np.array([weights[name] for name in names])
        return str(rng.choice(names, p=probabilities / probabilities.sum()))

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        self._calls += 1
        seed = [self.seed, index, self._calls]
        worker = torch.utils.data.get_worker_info()
        if worker is not None:  # each loader worker counts its own calls: keep their draws apart
            seed.append(worker.id)
        rng = np.random.default_rng(seed)
        record = self.records[index]
        style = self.style_for(record, rng)
        pair = make_training_pair(record, style, rng, self.augment, self.output_scale, self.pair_warp_px,
                                  self.photo_resample)
        has_points = pair.five_points is not None
        # A doodle's few lines carry little of who it is: asking for the person's identity from it
        # may teach the generator a look, not a likeness.
        for_identity = has_points and (self.identity_on_doodles or style != "doodle")
        return {"sketch": image_to_tensor(pair.sketch), "photo": image_to_tensor(pair.photo),
                "face_mask": torch.from_numpy(pair.face_mask)[None],
                "five_points": torch.from_numpy(pair.five_points if has_points else np.zeros((5, 2), np.float32)),
                "identity_mask": torch.tensor(for_identity),
                "pixel_mask": torch.tensor(self.l1_on_doodles or style != "doodle"),
                "doodle_mask": torch.tensor(style == "doodle")}


def build_training_records(root: Path | None = None, limit: int | None = None, with_landmarks: bool = True,
                           output_scale: int = 1, cufs_validation_every: int = 0,
                           landmarks_file: Path | None = None, learned_sketches: dict[str, np.ndarray] | None = None,
                           ) -> list[FaceRecord]:
    """Every allowed training photo (``limit``: at most that many per source), less the CUFS train
    pairs kept for validation. london_smiling needs landmarks for its alignment, so it joins only
    ``with_landmarks``. ``landmarks_file``: read them from there if it exists (no dlib needed),
    else find them with dlib and write them there. ``learned_sketches``: {record name: sketch}
    (artist_sketches.load) for the records without an artist sketch; each becomes its learned_sketch."""
    return _with_learned_sketches(_build_training_records(root, limit, with_landmarks, output_scale,
                                                          cufs_validation_every, landmarks_file), learned_sketches)


def _with_learned_sketches(records: list[FaceRecord], learned: dict[str, np.ndarray] | None) -> list[FaceRecord]:
    if not learned:
        return records
    missing = [record.name for record in records if record.sketch is None and record.name not in learned]
    if missing:
        raise SystemExit(f"the learned sketches have none for {len(missing)} training photos (e.g. {missing[0]}): draw them again")
    return [replace(record, learned_sketch=learned[record.name]) if record.sketch is None else record for record in records]


def _build_training_records(root: Path | None, limit: int | None, with_landmarks: bool, output_scale: int,
                            cufs_validation_every: int, landmarks_file: Path | None) -> list[FaceRecord]:
    records = load_cufs("train", root, limit=limit, output_scale=output_scale, validation_every=cufs_validation_every)
    records += load_faces(root=root, limit=limit, output_scale=output_scale)
    if not with_landmarks:
        return records
    from_file = landmarks_file is not None and Path(landmarks_file).is_file()
    landmarks = TrainingLandmarks.read(landmarks_file) if from_file else _found_by_dlib()
    if landmarks is None:
        if landmarks_file is not None:
            raise SystemExit(f"--landmarks-file {landmarks_file} does not exist, and dlib cannot find the landmarks "
                             "here (dlib or face-recognition-models is not installed): write the file where dlib is installed")
        return records  # no dlib: london_smiling cannot be aligned, and the doodles draw outer contours only
    records += load_landmark_aligned_faces(root=root, limit=limit, output_scale=output_scale, landmarks=landmarks)
    add_landmarks(records, landmarks)
    if landmarks_file is not None and not landmarks.from_file:
        landmarks.save(landmarks_file)
    return records
