"""Training data, read from the shared data folder at run time (nothing is copied into the repo).

Sources (see ../shared/data/README.md):
- CUFS train: 88 photo/sketch pairs, already aligned; we add synthetic styles of the photos.
- Frontal face photos (london_neutral, 3dsk, composite), aligned to the canvas by their pupils
  (faces/eyes.csv); their sketches are synthetic.

Never used for training: cufs/test (the benchmark), faces/canada (held out) and eval/.
Every pair goes through :func:`sketch2face.preprocess.normalise`, the same code that serves
user drawings, and the photo is warped by the same framing transform.
"""

from __future__ import annotations

import csv
import os
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import cv2
import numpy as np
import torch
from torch.utils.data import Dataset

from .. import preprocess
from . import styles
from ..errors import InputError
from ..landmarks import LandmarkDetector
from ..preprocess import CANVAS_EYES, CANVAS_SIZE, similarity_transform
from ..tensors import image_to_tensor

HELD_OUT = ("cufs/test", "faces/canada", "eval")
TRAIN_FACE_FOLDERS = ("london_neutral", "3dsk", "composite")
CUFS_SIZE = (200, 250)


def default_data_root() -> Path:
    """$SKETCH2FACE_DATA, else ../shared/data next to the checkout the package runs from."""
    if os.environ.get("SKETCH2FACE_DATA"):
        return Path(os.environ["SKETCH2FACE_DATA"])
    return Path(__file__).resolve().parents[3] / "shared" / "data"


def _refuse_held_out(path: Path, root: Path, allow_held_out: bool) -> None:
    relative = path.resolve().relative_to(root.resolve()).as_posix()
    if not allow_held_out and any(relative == part or relative.startswith(part + "/") for part in HELD_OUT):
        raise ValueError(f"{relative} is held out for evaluation and must never be used for training")


@dataclass
class FaceRecord:
    name: str
    photo: np.ndarray  # uint8 (H, W, 3) RGB on the canvas framing
    sketch: np.ndarray | None = None  # float32 (H, W) artist sketch, when there is one
    landmarks: np.ndarray | None = None  # (68, 2) canvas coordinates, for the doodle style


def read_rgb(path: Path) -> np.ndarray:
    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if image is None:
        raise FileNotFoundError(path)
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


def cufs_to_canvas(image: np.ndarray) -> np.ndarray:
    """CUFS images are 200x250 in the canonical framing: the canvas is the same frame x1.28."""
    return cv2.resize(image, CANVAS_SIZE, interpolation=cv2.INTER_CUBIC)


def load_cufs(split: str, root: Path | None = None, allow_held_out: bool = False, limit: int | None = None) -> list[FaceRecord]:
    root = root or default_data_root()
    folder = root / "cufs" / split
    _refuse_held_out(folder, root, allow_held_out)
    records = []
    for photo_path in sorted((folder / "photos").glob("*.jpg"))[:limit]:
        sketch_path = folder / "sketches" / photo_path.name
        sketch = cv2.cvtColor(read_rgb(sketch_path), cv2.COLOR_RGB2GRAY).astype(np.float32) / 255.0
        records.append(
            FaceRecord(
                name=f"cufs/{split}/{photo_path.stem}",
                photo=cufs_to_canvas(read_rgb(photo_path)),
                sketch=cufs_to_canvas(sketch),
            )
        )
    return records


def eye_alignment(left_eye: tuple[float, float], right_eye: tuple[float, float]) -> np.ndarray:
    """Similarity transform (2x3) taking the two pupils (image left, image right) to CANVAS_EYES."""
    return similarity_transform([left_eye, right_eye], CANVAS_EYES)


def load_faces(
    folders: tuple[str, ...] = TRAIN_FACE_FOLDERS,
    root: Path | None = None,
    allow_held_out: bool = False,
    limit: int | None = None,
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
        photo = cv2.warpAffine(
            read_rgb(path), eye_alignment(left, right), CANVAS_SIZE, flags=cv2.INTER_AREA, borderMode=cv2.BORDER_REPLICATE
        )
        records.append(FaceRecord(name=f"faces/{row['file']}", photo=photo))
    return records


def add_landmarks(records: list[FaceRecord]) -> int:
    """Fill in landmarks where dlib finds a face; returns how many were found."""
    try:
        detector = LandmarkDetector()
    except ImportError:
        return 0  # the doodle style then draws outer contours only
    found = 0
    for record in records:
        record.landmarks = detector(record.photo)
        found += record.landmarks is not None
    return found


# Style mix: CUFS items keep their artist sketch often; everything else is synthetic, with the
# mouse-doodle style weighted up because it is what people really draw.
CUFS_STYLE_WEIGHTS = {"artist": 0.4, "doodle": 0.25, "edges": 0.1, "xdog": 0.1, "pencil": 0.15}
PHOTO_STYLE_WEIGHTS = {"doodle": 0.4, "edges": 0.2, "xdog": 0.2, "pencil": 0.2}


FACE_MARGIN_PX = 6  # skin just outside the landmarks: dlib's identity crop sees it too


def face_mask(landmarks: np.ndarray | None, shape: tuple[int, int]) -> np.ndarray:
    """float32 (H, W): 1 on the inner face (hull of the 68 landmarks, brows to chin), else 0."""
    mask = np.zeros(shape, np.uint8)
    if landmarks is not None:
        cv2.fillConvexPoly(mask, cv2.convexHull(np.round(landmarks).astype(np.int32)), 1)
        size = 2 * FACE_MARGIN_PX + 1
        mask = cv2.dilate(mask, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (size, size)))
    return mask.astype(np.float32)


class TrainingPair(NamedTuple):
    sketch: np.ndarray  # float32 (H, W) canvas, 1 = paper
    photo: np.ndarray  # uint8 (H, W, 3) RGB, pixel-aligned with the sketch
    face_mask: np.ndarray  # float32 (H, W), see face_mask(); all 0 without landmarks


def make_training_pair(record: FaceRecord, style: str, rng: np.random.Generator, augment: bool = True) -> TrainingPair:
    """One (sketch, photo, face mask) triple through the serving preprocessing."""
    if style == "artist":
        sketch = record.sketch
    else:
        sketch = styles.make_sketch(style, record.photo, rng, record.landmarks)
    # The mask rides along as a fourth photo channel, so it gets exactly the photo's geometry.
    mask = np.rint(face_mask(record.landmarks, record.photo.shape[:2]) * 255).astype(np.uint8)
    photo = np.dstack([record.photo, mask])
    if augment:
        sketch, photo = _augment(sketch, photo, rng)
    try:
        normalised = preprocess.normalise(sketch.astype(np.float32))
        sketch, photo = normalised.canvas, preprocess.warp_to_canvas(photo, normalised.to_canvas)
    except InputError:  # a style that erased nearly everything: keep the plain framing
        sketch = sketch.astype(np.float32)
    return TrainingPair(sketch, np.ascontiguousarray(photo[..., :3]), photo[..., 3].astype(np.float32) / 255.0)


def _augment(sketch: np.ndarray, photo: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    if rng.random() < 0.5:
        sketch, photo = sketch[:, ::-1], photo[:, ::-1]
    height, width = sketch.shape
    angle = rng.uniform(-6.0, 6.0)
    scale = rng.uniform(0.85, 1.1)
    shift = rng.uniform(-10.0, 10.0, size=2)
    matrix = cv2.getRotationMatrix2D((width / 2, height / 2), angle, scale)
    matrix[:, 2] += shift
    sketch = cv2.warpAffine(np.ascontiguousarray(sketch), matrix, (width, height), borderValue=1.0)
    photo = cv2.warpAffine(np.ascontiguousarray(photo), matrix, (width, height), borderMode=cv2.BORDER_REPLICATE)
    return sketch, photo


class SketchPhotoDataset(Dataset):
    """Draws a fresh style and augmentation every time an item is read."""

    def __init__(self, records: list[FaceRecord], seed: int = 0, augment: bool = True,
                 artist_weight: float | None = None, cufs_repeats: int = 1):
        """artist_weight: how often a CUFS item keeps its artist sketch (default CUFS_STYLE_WEIGHTS);
        cufs_repeats: how many times each CUFS item appears per epoch (the benchmark's style)."""
        if not records:
            raise ValueError("no training records: is the data folder right?")
        if cufs_repeats < 1:
            raise ValueError("cufs_repeats must be at least 1")
        self.records = [repeat for record in records
                        for repeat in [record] * (cufs_repeats if record.sketch is not None else 1)]
        self.seed = seed
        self.augment = augment
        self.cufs_weights = dict(CUFS_STYLE_WEIGHTS)
        if artist_weight is not None:
            if not 0.0 <= artist_weight <= 1.0:
                raise ValueError("artist_weight must be in [0, 1]")
            synthetic = 1.0 - CUFS_STYLE_WEIGHTS["artist"]
            self.cufs_weights = {name: (artist_weight if name == "artist" else weight * (1.0 - artist_weight) / synthetic)
                                 for name, weight in CUFS_STYLE_WEIGHTS.items()}
        self._calls = 0

    def __len__(self) -> int:
        return len(self.records)

    def style_for(self, record: FaceRecord, rng: np.random.Generator) -> str:
        weights = self.cufs_weights if record.sketch is not None else PHOTO_STYLE_WEIGHTS
        names = list(weights)
        probabilities = np.array([weights[name] for name in names])
        return str(rng.choice(names, p=probabilities / probabilities.sum()))

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        self._calls += 1
        rng = np.random.default_rng([self.seed, index, self._calls])
        record = self.records[index]
        pair = make_training_pair(record, self.style_for(record, rng), rng, self.augment)
        return {"sketch": image_to_tensor(pair.sketch), "photo": image_to_tensor(pair.photo),
                "face_mask": torch.from_numpy(pair.face_mask)[None]}


def build_training_records(root: Path | None = None, limit: int | None = None, with_landmarks: bool = True) -> list[FaceRecord]:
    records = load_cufs("train", root, limit=limit) + load_faces(root=root, limit=limit)
    if with_landmarks:
        add_landmarks(records)
    return records
