"""Pairs that show the upscaler what the generator really paints.

A pair is the generator's 256x320 face for a synthetic sketch of a training photo, and that photo
at 512x640 in the same framing (``data.make_training_pair`` with ``output_scale=2``: the sketch's
augmentation moves the photo with it). Trained on such pairs, the upscaler learns to turn the
generator's faces, checkerboard and traced lines included, into the photo at full size, which a
photo shrunk and blurred (``train_upscaler``'s other input) cannot teach.

Photos: london_neutral, london_smiling and 3dsk, whose originals are at least as big as a
512x640 face. Every eighth person (by id) is kept out of training for selection
(:func:`split_people`); faces/canada, CUFS test and eval/ are never read.

Building 1,000 pairs takes a few minutes on 2 CPU cores (sketch styles, dlib, the generator), so
:func:`cached_pairs` keeps them in one ``.npz`` next to the run, keyed by everything that made them.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import NamedTuple

import numpy as np

from . import data
from .data import PHOTO_STYLE_WEIGHTS, FaceRecord
from ..pipeline import DEFAULT_WEIGHTS_DIR, Sketch2Face, load_generator, resolve_model

GENERATED_PHOTO_FOLDERS = ("london_neutral", "london_smiling", "3dsk")
VALIDATION_EVERY = 8  # every 8th person is kept for selection


class GeneratedPairs(NamedTuple):
    faces: np.ndarray  # uint8 (N, 320, 256, 3): the generator's canvas faces
    photos: np.ndarray  # uint8 (N, 640, 512, 3): the true photos, same framing, 2x
    styles: list[str]  # the sketch style each face was generated from
    names: list[str]  # the photo each pair came from


def person_of(record_name: str) -> str:
    """The person a photo shows: London's neutral 001_03.jpg and smiling 001_08.jpg are one person."""
    folder, file = record_name.split("/")[-2:]
    if folder.startswith("london"):
        return "london:" + file.split("_")[0]
    return f"{folder}:{Path(file).stem}"


def split_people(records: list[FaceRecord]) -> tuple[list[FaceRecord], list[FaceRecord]]:
    """(training, validation): all photos of a person fall on the same side, every eighth person
    (in sorted order) on the validation side."""
    people = sorted({person_of(record.name) for record in records})
    validation = set(people[::VALIDATION_EVERY])
    return ([record for record in records if person_of(record.name) not in validation],
            [record for record in records if person_of(record.name) in validation])


def load_records(root: Path | None = None, limit: int | None = None) -> list[FaceRecord]:
    """The full-resolution training photos with their landmarks (for the doodle style)."""
    folders = tuple(folder for folder in GENERATED_PHOTO_FOLDERS if folder in data.TRAIN_FACE_FOLDERS)
    records = data.load_faces(folders, root=root, limit=limit, output_scale=2)
    records += data.load_landmark_aligned_faces(root=root, limit=limit, output_scale=2)
    data.add_landmarks(records)
    return records


def make_pairs(generate_canvas, records: list[FaceRecord], draws: int, seed: int, augment: bool = True) -> GeneratedPairs:
    """``draws`` pairs per photo, each with a style drawn by the generator's training weights
    (doodles most often) and, with ``augment``, the training augmentation (without it the face
    stays where the canvas puts it, for judging a fixed crop). ``generate_canvas``: canvas
    sketch -> canvas face, e.g. ``Sketch2Face.generate_canvas``."""
    if not records:
        raise ValueError("no photos to generate faces for: is the data folder right?")
    names, probabilities = list(PHOTO_STYLE_WEIGHTS), np.array(list(PHOTO_STYLE_WEIGHTS.values()))
    faces, photos, styles, sources = [], [], [], []
    for index, record in enumerate(records):
        for draw in range(draws):
            rng = np.random.default_rng([seed, index, draw])
            style = str(rng.choice(names, p=probabilities / probabilities.sum()))
            pair = data.make_training_pair(record, style, rng, augment=augment, output_scale=2)
            faces.append(generate_canvas(pair.sketch))
            photos.append(pair.photo)
            styles.append(style)
            sources.append(record.name)
    return GeneratedPairs(np.stack(faces), np.stack(photos), styles, sources)


def cached_pairs(cache: Path, key: dict, build) -> GeneratedPairs:
    """The pairs stored in ``cache`` if they were made with the same ``key``; else ``build()``'s,
    stored there."""
    key_text = json.dumps(key, sort_keys=True)
    if cache.exists():
        with np.load(cache) as stored:
            if str(stored["key"]) == key_text:
                return GeneratedPairs(stored["faces"], stored["photos"], list(stored["styles"]), list(stored["names"]))
    pairs = build()
    cache.parent.mkdir(parents=True, exist_ok=True)
    temporary = cache.with_name(cache.stem + ".tmp.npz")
    np.savez(temporary, key=key_text, faces=pairs.faces, photos=pairs.photos, styles=np.array(pairs.styles),
             names=np.array(pairs.names))
    temporary.replace(cache)
    return pairs


def pairs_for_side(out_dir: Path, data_root: Path | None, generator: str | None, draws: int, seed: int,
                   side: str = "training") -> tuple[GeneratedPairs, dict]:
    """The generator's faces for one side of the people split, built once and then read from
    ``OUT/generated_{side}_pairs.npz``, with a description for the model card. The training side
    is augmented like the generator's training; the validation side is not, so that a fixed crop
    is the inner face."""
    model_path = resolve_model(generator)
    augment = side == "training"
    key = {"generator": str(model_path), "generator_sha256": _weights_digest(model_path), "draws": draws, "seed": seed,
           "side": side, "augment": augment, "data_root": str(data_root or data.default_data_root())}

    def build() -> GeneratedPairs:
        chosen = split_people(load_records(data_root))[0 if side == "training" else 1]
        print(f"generating {draws} faces for each of {len(chosen)} {side} photos with {model_path} ...", flush=True)
        # The main generator alone, for every style: the shipped upscaler was trained on its faces.
        return make_pairs(Sketch2Face(load_generator(generator)).generate_canvas, chosen, draws, seed, augment)

    pairs = cached_pairs(out_dir / f"generated_{side}_pairs.npz", key, build)
    return pairs, {"photos": len(set(pairs.names)), "people": len({person_of(name) for name in pairs.names}),
                   "faces": len(pairs.faces), "folders": list(GENERATED_PHOTO_FOLDERS), "generator": _generator_name(model_path)}


def _generator_name(model_path) -> str:
    """How the card names the generator: ``weights/`` for the shipped one, else as given."""
    if isinstance(model_path, Path) and model_path.resolve() == DEFAULT_WEIGHTS_DIR.resolve():
        return "weights/"
    return str(model_path)


def _weights_digest(model_path) -> str:
    path = Path(model_path) / "model.safetensors"
    return hashlib.sha256(path.read_bytes()).hexdigest() if path.exists() else str(model_path)
