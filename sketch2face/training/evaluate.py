"""Evaluate a generator on the held-out data and write JSON + Markdown + image grids.

    python -m sketch2face.training.evaluate                       # the bundled weights/
    python -m sketch2face.training.evaluate --model runs/main/generator --out outputs/eval
    python -m sketch2face.training.evaluate --select runs/a/generator runs/b/generator   # choose on CUFS *train*
    python -m sketch2face.training.evaluate --side-by-side weights runs/v2/generator  # the same inputs through both
    python -m sketch2face.training.evaluate --compare docs/metrics.json outputs/eval/metrics.json  # face by face

These figures judge the generator alone, at the canvas's resolution (``full_size=False``): the x2
upscaler, if the weights have one, is skipped here and judged by ``evaluate_upscaler``. The grids (``--examples-grid``,
``--side-by-side``) show what the app returns, upscaler included.

Benchmark: CUFS test, all 100 pairs. Every generated face is mapped back to the sketch's frame
by the pipeline, resized to the photo's 200x250 with area averaging, and compared in RGB:

- SSIM: ``skimage.metrics.structural_similarity(real, fake, channel_axis=2, data_range=255)``
  (7x7 uniform window, the mean over the three channels).
- PSNR: ``skimage.metrics.peak_signal_noise_ratio(real, fake, data_range=255)``.
- MSE: ``skimage.metrics.mean_squared_error`` over all pixels and channels (0..255 scale).
- L2: the Euclidean norm of the whole difference image, ``||real - fake||_2`` (0..255 scale).

Identity uses dlib's 128-d face embedding (ResNet, from face-recognition-models): each
generated face is identified among the 100 real test photos by embedding distance (rank-1,
rank-5) and the mean distance to its own photo is reported (dlib's same-person threshold is 0.6).
The same identity figures are computed on faces/canada (held out, 40 people) for each synthetic
sketch style. Images from the data folder are never written into the repository: the grids
go to --out (git-ignored ``outputs/`` by default).

Realism is KID x1000 (``kid.py``: ImageNet MobileNetV2 pooled features, cubic polynomial kernel,
unbiased, each whole image resized to 224x224): the CUFS test outputs against the CUFS
train photos; and the outputs for the eval doodles + edge maps and for synthetic doodles of the
Canada photos against the London neutral + 3DSK photos (all on the canvas framing: outputs as
the generator makes them, photos aligned by their pupils). Real photos in the same comparisons
give the reference floor. Lower is better.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import cv2
import numpy as np
from PIL import Image
from skimage.metrics import mean_squared_error, peak_signal_noise_ratio, structural_similarity

from . import data, kid, styles
from .data import CUFS_SIZE
from .. import preprocess
from ..landmarks import FaceDetector, model_path
from ..pipeline import Sketch2Face

PUBLISHED = [
    ("pix2pix (seed paper)", "0.862", "30.93", "52.9"),
    ("VGG-16 transfer autoencoder (own split)", "0.807", "", ""),
    ("U-Net GAN", "0.78", "24.5", ""),
]
CANVAS_CHECKERBOARD_PERIODS = (2, 4, 8)  # px on the 256x320 canvas
# Brows to chin, between the cheeks, on the 256x320 canvas (x0, y0, x1, y1). The doodle KID is also
# taken here: the CUFS photos it compares with are all on blue, the photos most training doodles are
# drawn from are on grey, so on the whole canvas it partly measures the background.
INNER_FACE_BOX = (64, 100, 192, 260)
EXAMPLES_DIR = Path(__file__).resolve().parents[2] / "examples"  # the project's own drawings
RAW_SKETCH_BASELINE = {"rank1": 0.27, "rank5": 0.60, "mean_distance": 0.485}


class FaceEmbedder:
    """dlib 128-d embeddings. Faces the detector misses are embedded from a fixed box."""

    def __init__(self):
        import dlib

        self.faces = FaceDetector()
        self.shape_predictor = dlib.shape_predictor(str(model_path("shape_predictor_5_face_landmarks.dat")))
        self.encoder = dlib.face_recognition_model_v1(str(model_path("dlib_face_recognition_resnet_model_v1.dat")))
        self._dlib = dlib

    def __call__(self, image: np.ndarray, fallback_box: tuple[int, int, int, int]) -> tuple[np.ndarray, bool]:
        image = np.ascontiguousarray(image)
        box = self.faces.largest_face(image)
        found = box is not None
        box = box if found else self._dlib.rectangle(*fallback_box)
        shape = self.shape_predictor(image, box)
        return np.array(self.encoder.compute_face_descriptor(image, shape)), found


def fallback_box(width: int, height: int) -> tuple[int, int, int, int]:
    """Where the aligned frame puts the face (left, top, right, bottom): fractions of CUFS's."""
    return (round(0.22 * width), round(0.33 * height), round(0.78 * width), round(0.78 * height))


def identification(generated: np.ndarray, real: np.ndarray) -> dict:
    """Rank-k identification of generated[i] among all real photos; the truth is real[i].

    ``ranks`` keeps each face's rank (0 = named right), so two models can be compared face by face.
    """
    distances = np.linalg.norm(generated[:, None, :] - real[None, :, :], axis=2)
    true = distances[np.arange(len(generated)), np.arange(len(generated))]
    ranks = (distances < true[:, None]).sum(axis=1)  # 0 = the true photo is the nearest
    return {
        "rank1": float(np.mean(ranks < 1)),
        "rank5": float(np.mean(ranks < 5)),
        "mean_distance": float(true.mean()),
        "gallery": int(len(real)),
        "ranks": [int(rank) for rank in ranks],
        "distances": [round(float(distance), 6) for distance in true],
    }


def sign_test_p(wins: int, losses: int) -> float:
    """Two-sided exact sign test (McNemar's, on discordant pairs): how often a fair coin splits
    ``wins + losses`` tosses at least this unevenly. Ties are left out before calling."""
    tosses, fewer = wins + losses, min(wins, losses)
    if tosses == 0:
        return 1.0
    tail = sum(math.comb(tosses, k) for k in range(fewer + 1)) / 2 ** tosses
    return min(1.0, 2 * tail)


def paired_identity(reference: dict, candidate: dict) -> dict:
    """Face-by-face comparison of two ``identification`` results on the same faces and gallery.

    With 100 faces a rank-1 gap of a few faces is noise: the discordant faces (named right by only
    one of the two) and a sign test over them say whether it is. Ranks and distances (where both
    results have them) are compared the same way, each face voting for the model that did better.
    """
    if len(reference["ranks"]) != len(candidate["ranks"]) or reference["gallery"] != candidate["gallery"]:
        raise ValueError(f"not the same faces: {len(reference['ranks'])} faces among {reference['gallery']} "
                         f"against {len(candidate['ranks'])} among {candidate['gallery']}")
    reference_ranks, candidate_ranks = np.array(reference["ranks"]), np.array(candidate["ranks"])
    reference_first, candidate_first = reference_ranks == 0, candidate_ranks == 0
    only_reference = int((reference_first & ~candidate_first).sum())
    only_candidate = int((candidate_first & ~reference_first).sum())
    rank_better = int((candidate_ranks < reference_ranks).sum())
    rank_worse = int((candidate_ranks > reference_ranks).sum())
    result = {
        "faces": len(reference_ranks),
        "first_under_both": int((reference_first & candidate_first).sum()),
        "first_only_under_reference": only_reference,
        "first_only_under_candidate": only_candidate,
        "rank1_p": sign_test_p(only_candidate, only_reference),
        "mean_rank": [float(reference_ranks.mean()), float(candidate_ranks.mean())],
        "rank_better": rank_better, "rank_worse": rank_worse,
        "rank_p": sign_test_p(rank_better, rank_worse),
    }
    if "distances" in reference and "distances" in candidate:
        reference_distances, candidate_distances = np.array(reference["distances"]), np.array(candidate["distances"])
        closer = int((candidate_distances < reference_distances).sum())
        further = int((candidate_distances > reference_distances).sum())
        result.update(distance_closer=closer, distance_further=further, distance_p=sign_test_p(closer, further))
    return result


def compare_reports(reference: dict, candidate: dict) -> dict[str, dict]:
    """``paired_identity`` for every identity result two ``metrics.json`` reports share."""
    if not isinstance(reference, dict) or not isinstance(candidate, dict):
        raise ValueError("a metrics.json report is a JSON object")
    sections = {"CUFS test": ("cufs_test", "identity")}
    sections.update({f"Canada {style}": ("canada", style) for style in candidate.get("canada", {})})
    compared = {}
    for name, (group, key) in sections.items():
        reference_identity = reference.get(group, {}).get(key)
        candidate_identity = candidate.get(group, {}).get(key)
        if reference_identity and candidate_identity and "ranks" in reference_identity and "ranks" in candidate_identity:
            compared[name] = paired_identity(reference_identity, candidate_identity)
    return compared


def comparison_table(compared: dict[str, dict]) -> str:
    rows = ["| Faces (reference -> candidate) | named right by both | only reference | only candidate | rank-1 p "
            "| mean rank | rank better / worse (p) | distance closer / further (p) |",
            "|---|---|---|---|---|---|---|---|"]
    for name, c in compared.items():
        distance = (f"{c['distance_closer']} / {c['distance_further']} ({c['distance_p']:.2g})"
                    if "distance_p" in c else "not in both reports")
        rows.append(f"| {name} ({c['faces']}) | {c['first_under_both']} | {c['first_only_under_reference']} "
                    f"| {c['first_only_under_candidate']} | {c['rank1_p']:.2g} | {c['mean_rank'][0]:.2f} -> {c['mean_rank'][1]:.2f} "
                    f"| {c['rank_better']} / {c['rank_worse']} ({c['rank_p']:.2g}) | {distance} |")
    return "\n".join(rows) + "\n"


# CUHK names its files by sex ("f-005-01", "m-006-01"); 20 of the 100 test people are women.
CUFS_GROUPS = {"f": "women", "m": "men"}


def identity_by_group(names: list[str], ranks: list[int], groups: dict[str, str] = CUFS_GROUPS) -> dict[str, dict]:
    """Rank-1/rank-5 for each group of faces, still identified among the whole gallery."""
    by_group = {}
    for prefix, group in groups.items():
        group_ranks = [rank for name, rank in zip(names, ranks) if name.startswith(prefix)]
        if group_ranks:
            by_group[group] = {
                "faces": len(group_ranks),
                "rank1": float(np.mean([rank < 1 for rank in group_ranks])),
                "rank5": float(np.mean([rank < 5 for rank in group_ranks])),
            }
    return by_group


@dataclass
class Pair:
    name: str
    sketch: np.ndarray  # what the pipeline is given
    photo: np.ndarray | None  # uint8 RGB, the truth


def to_uint8_gray(sketch: np.ndarray) -> np.ndarray:
    return sketch if sketch.dtype == np.uint8 else (np.clip(sketch, 0, 1) * 255).round().astype(np.uint8)


def generate_all(model: Sketch2Face, pairs: list[Pair], size: tuple[int, int] | None) -> list[np.ndarray]:
    outputs = []
    for pair in pairs:
        image = np.asarray(model.generate(pair.sketch, full_size=False).image)
        target = size or (pair.photo.shape[1::-1] if pair.photo is not None else None)
        if target is not None and image.shape[1::-1] != tuple(target):
            image = cv2.resize(image, target, interpolation=cv2.INTER_AREA)
        outputs.append(image)
    return outputs


def image_metrics(real: np.ndarray, fake: np.ndarray) -> dict[str, float]:
    difference = real.astype(np.float64) - fake.astype(np.float64)
    return {
        "ssim": float(structural_similarity(real, fake, channel_axis=2, data_range=255)),
        "psnr": float(peak_signal_noise_ratio(real, fake, data_range=255)),
        "mse": float(mean_squared_error(real, fake)),
        "l2": float(np.linalg.norm(difference)),
    }


def evaluate_cufs(model: Sketch2Face, embedder: FaceEmbedder, root: Path, split: str = "test") -> tuple[dict, list, list]:
    folder = root / "cufs" / split
    pairs = []
    for photo_path in sorted((folder / "photos").glob("*.jpg")):
        sketch = cv2.imread(str(folder / "sketches" / photo_path.name), cv2.IMREAD_GRAYSCALE)
        pairs.append(Pair(photo_path.stem, sketch, data.read_rgb(photo_path)))
    fakes = generate_all(model, pairs, CUFS_SIZE)
    per_image = [image_metrics(pair.photo, fake) for pair, fake in zip(pairs, fakes)]
    box = fallback_box(*CUFS_SIZE)
    real_embeddings = np.stack([embedder(pair.photo, box)[0] for pair in pairs])
    fake_results = [embedder(fake, box) for fake in fakes]
    sketch_results = [embedder(np.repeat(pair.sketch[..., None], 3, axis=2), box) for pair in pairs]
    summary = {name: float(np.mean([m[name] for m in per_image])) for name in per_image[0]}
    summary["identity"] = identification(np.stack([e for e, _ in fake_results]), real_embeddings)
    summary["identity"]["face_detected"] = float(np.mean([found for _, found in fake_results]))
    summary["raw_sketch_identity"] = identification(np.stack([e for e, _ in sketch_results]), real_embeddings)
    names = [pair.name for pair in pairs]
    for key in ("identity", "raw_sketch_identity"):
        summary[key]["by_group"] = identity_by_group(names, summary[key]["ranks"])
    summary["pairs"] = len(pairs)
    return summary, pairs, fakes


def checkerboard_peaks(image: np.ndarray, periods_px: tuple[int, ...] = CANVAS_CHECKERBOARD_PERIODS) -> float:
    """How far the spectrum stands out at the frequencies of a checkerboard of these periods: the
    mean ratio of each peak's magnitude to the median of the bins around it. About 1 means none;
    real photos give 0.7-1.0. Stage 4's transposed decoder paints periods 2, 4 and 8 on the canvas
    (ratios 2-5), which become 4, 8 and 16 px in a face upscaled x2.

    It sees the part of the pattern that keeps its phase over the whole image. Where the pattern's
    sign and strength follow the content, its energy spreads off the peaks: a notch filter at the
    peaks takes stage 4's ratio from about 3.5 to 0.05 while the grid stays visible at 1:1. So a
    low ratio is necessary, not sufficient: look at the 1:1 crops too."""
    grey = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY).astype(np.float64)
    spectrum = np.abs(np.fft.fft2(grey - grey.mean()))
    height, width = spectrum.shape
    ring = np.ones((7, 7), bool)
    ring[2:5, 2:5] = False
    ratios = []
    for period in periods_px:
        for step_y, step_x in ((height // period, 0), (0, width // period), (height // period, width // period),
                               (height // period, -(width // period))):
            rows = (step_y + np.arange(-3, 4)) % height
            columns = (step_x + np.arange(-3, 4)) % width
            window = spectrum[np.ix_(rows, columns)]
            ratios.append(window[3, 3] / (np.median(window[ring]) + 1e-9))
    return float(np.mean(ratios))


def seam_step(output: np.ndarray, sketch: preprocess.NormalisedSketch, near: float = 0.04, far: float = 0.1,
              clearance: float = 0.08) -> float | None:
    """How much the canvas's edge shows as a rectangle in a result: the mean absolute difference
    (grey levels, over channels) between the background just inside and just outside each canvas
    edge that falls inside the result. The bands run from ``near`` to ``far`` x the canvas width
    from the edge (beyond the blend over the edge itself), and only where the inside band is at
    least ``clearance`` x the canvas width from the drawing (:func:`preprocess.drawing_region`), so
    the face itself is not counted. None when no edge position qualifies. A flat background gives 0."""
    height, width = output.shape[:2]
    to_output = preprocess.canvas_to_output(sketch, 1.0, (width, height))
    unit = to_output[0, 0] * preprocess.CANVAS_SIZE[0]  # the canvas width, in result pixels
    x0, y0 = to_output[:, 2]
    x1, y1 = x0 + unit, y0 + to_output[1, 1] * preprocess.CANVAS_SIZE[1]
    start, stop = (max(1, round(fraction * unit)) for fraction in (near, far))
    region = preprocess.drawing_region(sketch.canvas, widen=clearance)
    drawn = cv2.warpAffine(region, to_output, (width, height), flags=cv2.INTER_NEAREST, borderValue=0) > 0
    image = output.astype(np.float64)
    rows = np.arange(max(0, round(y0)), min(height, round(y1)))
    columns = np.arange(max(0, round(x0)), min(width, round(x1)))
    steps = []
    for edge, vertical, inward in ((x0, True, 1), (x1, True, -1), (y0, False, 1), (y1, False, -1)):
        at = round(edge)
        inside = np.arange(at + start, at + stop) if inward > 0 else np.arange(at - stop, at - start)
        outside = np.arange(at - stop, at - start) if inward > 0 else np.arange(at + start, at + stop)
        if min(inside.min(), outside.min()) < 0 or max(inside.max(), outside.max()) >= (width if vertical else height):
            continue  # this edge is at (or past) the result's border
        if vertical:
            clear = ~drawn[np.ix_(rows, inside)].any(axis=1)
            a, b = image[np.ix_(rows, inside)].mean(axis=1), image[np.ix_(rows, outside)].mean(axis=1)
        else:
            clear = ~drawn[np.ix_(inside, columns)].any(axis=0)
            a, b = image[np.ix_(inside, columns)].mean(axis=0), image[np.ix_(outside, columns)].mean(axis=0)
        steps.append(np.abs(a - b).mean(axis=-1)[clear])
    steps = np.concatenate(steps) if steps else np.zeros(0)
    return float(steps.mean()) if steps.size else None


def mean_seam_step(outputs: list[np.ndarray], sketches: list[preprocess.NormalisedSketch]) -> float | None:
    """:func:`seam_step` averaged over the results that have a canvas edge to measure."""
    steps = [step for output, sketch in zip(outputs, sketches) if (step := seam_step(output, sketch)) is not None]
    return float(np.mean(steps)) if steps else None


SHIFT_AVERAGE_MODES = {"off": (False,), "on": (True,), "both": (False, True)}


def variants(model_paths: list[str], modes: tuple[bool, ...]) -> list[tuple[str, bool]]:
    """Each model in each ``shift_average`` mode, in that order."""
    return [(path, averaged) for path in model_paths for averaged in modes]


def variant_name(path: str, averaged: bool, modes: tuple[bool, ...]) -> str:
    return f"{path} (shift-averaged)" if averaged and len(modes) > 1 else path


def select(model_paths: list[str], out_dir: Path, root: Path | None = None, validation_every: int = 0,
           shift_average: tuple[bool, ...] = (True,), doodle_draws: int = 1) -> dict[str, dict]:
    """Compare candidate generators on CUFS *train* only, so that choosing one never looks at test.

    They were trained on these pairs, so the figures flatter every candidate alike; what counts is
    the order. The identity gallery is the 88 train photos, and KID judges against them the outputs
    for their artist sketches and for doodles drawn from them (:func:`train_doodles`); the doodles
    also on :func:`inner_face` crops of both, against the canvas-framed photos.
    ``checkerboard_peaks`` is the mean over the canvas outputs of the artist sketches
    (``doodle_checkerboard_peaks``: of the doodles, where fine-tunes grow the grid most).
    ``validation_every``: also report identity on the pairs a ``--cufs-validation-every`` run kept
    out (``validation``), still identified among all 88 photos.
    ``doodle_draws``: the doodle figures are means over that many draws of the doodles (seeds 0, 1,
    ...; each draw's figures in ``doodle_draws``), since one draw moves the seam step by up to 2x.
    """
    if doodle_draws < 1:
        raise ValueError(f"doodle_draws must be at least 1, not {doodle_draws}")
    root = root or data.default_data_root()
    embedder = FaceEmbedder()
    judge, train_photos, inner_photos = None, None, None
    try:
        judge = kid.MobileNetJudge()
    except (ImportError, FileNotFoundError, ValueError) as error:
        print(f"warning: KID skipped: {error}", file=sys.stderr)
    doodle_sets = train_doodle_draws(root, doodle_draws) if judge is not None else []  # only KID reads them
    results = {}
    for candidate, averaged in variants(model_paths, shift_average):
        model = Sketch2Face.from_pretrained(candidate, upscale=False, shift_average=averaged)
        candidate = variant_name(candidate, averaged, shift_average)
        summary, pairs, fakes = evaluate_cufs(model, embedder, root, split="train")
        canvases = [model.generate_canvas(preprocess.normalise(pair.sketch).canvas) for pair in pairs]
        results[candidate] = {"ssim": summary["ssim"], **summary["identity"], "kid_x1000": None, "doodle_kid_x1000": None,
                              "doodle_kid_inner_face_x1000": None, "doodle_checkerboard_peaks": None,
                              "checkerboard_peaks": float(np.mean([checkerboard_peaks(canvas) for canvas in canvases]))}
        if validation_every > 0:
            results[candidate]["validation"] = identity_subset(
                summary["identity"], [data.is_cufs_validation(index, validation_every) for index in range(len(pairs))])
        if judge is not None:
            if train_photos is None:
                train_photos = judge.features([pair.photo for pair in pairs])
                inner_photos = judge.features([inner_face(data.cufs_to_canvas(pair.photo)) for pair in pairs])
            results[candidate]["kid_x1000"] = _kid_row(train_photos, judge.features(fakes))["kid_x1000"]
            per_draw = [doodle_figures(model, doodles, judge, train_photos, inner_photos) for doodles in doodle_sets]
            results[candidate].update(mean_over_draws(per_draw))
            if doodle_draws > 1:
                results[candidate]["doodle_draws"] = per_draw
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "selection.json").write_text(json.dumps(results, indent=2))
    return results


def inner_face(canvas: np.ndarray) -> np.ndarray:
    """The :data:`INNER_FACE_BOX` of a canvas-framed image, at any multiple of the canvas size."""
    scale = canvas.shape[1] / preprocess.CANVAS_SIZE[0]
    if canvas.shape[0] != round(preprocess.CANVAS_SIZE[1] * scale):
        raise ValueError(f"not a canvas-framed image: {canvas.shape[1]}x{canvas.shape[0]}")
    x0, y0, x1, y1 = (round(value * scale) for value in INNER_FACE_BOX)
    return canvas[y0:y1, x0:x1]


def identity_subset(identity: dict, keep: list[bool]) -> dict:
    """:func:`identification`'s figures for some of its faces, each still named among the whole gallery."""
    ranks = np.array(identity["ranks"])[keep]
    distances = np.array(identity["distances"])[keep]
    return {"faces": int(len(ranks)), "rank1": float(np.mean(ranks < 1)), "rank5": float(np.mean(ranks < 5)),
            "mean_distance": float(distances.mean())}


def train_doodles(root: Path, seed: int = 0) -> list[np.ndarray]:
    """Mouse doodles of the CUFS train photos (styles.doodle, on dlib's landmarks), one fixed draw
    each: how a candidate treats what people draw, measured on training data only."""
    return train_doodle_draws(root, 1, first_seed=seed)[0]


def train_doodle_draws(root: Path, draws: int, first_seed: int = 0) -> list[list[np.ndarray]]:
    """:func:`train_doodles` for seeds ``first_seed`` .. ``first_seed + draws - 1``, the photos and
    landmarks read once."""
    records = data.load_cufs("train", root)
    data.add_landmarks(records)
    return [[styles.make_sketch("doodle", record.photo, np.random.default_rng([seed, index]), record.landmarks)
             for index, record in enumerate(records)]
            for seed in range(first_seed, first_seed + draws)]


def doodle_figures(model: Sketch2Face, doodles: list[np.ndarray], judge, train_photos: np.ndarray,
                   inner_photos: np.ndarray) -> dict[str, float | None]:
    """One draw of doodles through ``model``: KID (whole canvas and inner face), grid and seam step."""
    normalised = [preprocess.normalise(sketch) for sketch in doodles]
    canvases = [model.generate_canvas(sketch.canvas) for sketch in normalised]
    return {
        "doodle_kid_x1000": _kid_row(train_photos, judge.features(canvases))["kid_x1000"],
        "doodle_kid_inner_face_x1000": _kid_row(inner_photos, judge.features([inner_face(c) for c in canvases]))["kid_x1000"],
        "doodle_checkerboard_peaks": float(np.mean([checkerboard_peaks(canvas) for canvas in canvases])),
        # What generate(full_size=False) returns, from the canvases already made.
        "doodle_seam_step": mean_seam_step([preprocess.uncanvas(c, s) for c, s in zip(canvases, normalised)], normalised),
    }


def mean_over_draws(per_draw: list[dict[str, float | None]]) -> dict[str, float | None]:
    """Each doodle figure's mean over the draws (:func:`doodle_figures`' dicts); None where any draw
    has none (too few images)."""
    means = {}
    for key in per_draw[0]:
        values = [figures[key] for figures in per_draw]
        means[key] = None if any(value is None for value in values) else float(np.mean(values))
    return means


def selection_table(results: dict[str, dict]) -> str:
    lines = ["| Candidate (on CUFS train) | rank-1 | rank-5 | mean dist | SSIM | KID x1000 | doodle KID x1000 "
             "| doodle KID x1000, inner face | checkerboard | doodle checkerboard | doodle canvas-edge step |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]

    def text(value, digits=0):
        return "n/a" if value is None else f"{value:.{digits}f}"

    for name, result in results.items():
        lines.append(f"| {name} | {result['rank1']:.1%} | {result['rank5']:.1%} | {result['mean_distance']:.3f} "
                     f"| {result['ssim']:.3f} | {text(result.get('kid_x1000'))} | {text(result.get('doodle_kid_x1000'))} "
                     f"| {text(result.get('doodle_kid_inner_face_x1000'))} | {result['checkerboard_peaks']:.2f} "
                     f"| {text(result.get('doodle_checkerboard_peaks'), 2)} | {text(result.get('doodle_seam_step'), 1)} |")
    draws = {len(result["doodle_draws"]) for result in results.values() if "doodle_draws" in result}
    if draws:
        lines += ["", f"The doodle columns are means over {max(draws)} draws of the doodles; each draw's figures are in selection.json."]
    validation = {name: result["validation"] for name, result in results.items() if "validation" in result}
    if validation:
        lines += ["", "| Candidate (CUFS train pairs kept out of a validation run) | faces | rank-1 | rank-5 | mean dist |",
                  "|---|---|---|---|---|"]
        lines += [f"| {name} | {v['faces']} | {v['rank1']:.1%} | {v['rank5']:.1%} | {v['mean_distance']:.3f} |"
                  for name, v in validation.items()]
    return "\n".join(lines) + "\n"


def evaluate_canada(model: Sketch2Face, embedder: FaceEmbedder, root: Path, seed: int = 0) -> tuple[dict, dict]:
    records = data.load_faces(("canada",), root=root, allow_held_out=True)
    data.add_landmarks(records)
    width, height = records[0].photo.shape[1], records[0].photo.shape[0]
    box = fallback_box(width, height)
    real_embeddings = np.stack([embedder(record.photo, box)[0] for record in records])
    results, samples = {}, {}
    for style in styles.PHOTO_STYLES:
        pairs = []
        for index, record in enumerate(records):
            rng = np.random.default_rng([seed, index])
            pairs.append(Pair(record.name, styles.make_sketch(style, record.photo, rng, record.landmarks), record.photo))
        fakes = generate_all(model, pairs, (width, height))
        embeddings = [embedder(fake, box) for fake in fakes]
        results[style] = identification(np.stack([e for e, _ in embeddings]), real_embeddings)
        results[style]["face_detected"] = float(np.mean([found for _, found in embeddings]))
        results[style]["ssim"] = float(np.mean([image_metrics(p.photo, f)["ssim"] for p, f in zip(pairs, fakes)]))
        samples[style] = (pairs, fakes)
    return results, samples


def evaluate_unpaired(model: Sketch2Face, root: Path) -> dict[str, tuple[list, list]]:
    grids = {}
    for folder in ("doodles", "edgemaps"):
        paths = sorted((root / "eval" / folder).glob("*.jpg"), key=lambda p: (len(p.stem), p.stem))
        pairs = [Pair(path.stem, cv2.imread(str(path), cv2.IMREAD_GRAYSCALE), None) for path in paths]
        grids[folder] = (pairs, [np.asarray(model.generate(pair.sketch, full_size=False).image) for pair in pairs])
    return grids


def photo_likeness(image: np.ndarray) -> dict[str, float]:
    """Cheap checks that an output is a photo, not line art: colour and mid-tones."""
    hsv = cv2.cvtColor(image, cv2.COLOR_RGB2HSV)
    gray = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)
    return {
        "mean_saturation": float(hsv[..., 1].mean() / 255.0),
        "midtone_fraction": float(np.mean((gray > 40) & (gray < 215))),
    }


# KID comparisons: (what is generated, what it is judged against). The references are real photos.
KID_ROWS = {
    "cufs_test": "CUFS test outputs vs CUFS train photos",
    "eval_sketches": "eval doodles + edge maps outputs vs London neutral + 3DSK photos",
    "canada_doodles": "synthetic Canada doodle outputs vs London neutral + 3DSK photos",
    "doodles_all": "eval doodles + edge maps + Canada doodle outputs vs London neutral + 3DSK photos",
    "reference_cufs_photos": "reference: real CUFS test photos vs CUFS train photos",
    "reference_canada_photos": "reference: real Canada photos vs London neutral + 3DSK photos",
}


def _kid_row(judge_real: np.ndarray, judge_fake: np.ndarray, detail_ratio: float | None = None) -> dict:
    row = {"generated": int(len(judge_fake)), "real": int(len(judge_real))}
    try:
        row["kid_x1000"] = kid.kid_x1000(judge_real, judge_fake)
    except ValueError as error:  # too few images (tiny test data)
        row["kid_x1000"], row["note"] = None, str(error)
    if detail_ratio is not None:
        row["detail_ratio"] = detail_ratio
    return row


class _Judged(NamedTuple):
    """An image set as the judge sees it: one feature row and one ``kid.detail`` per image."""
    features: np.ndarray
    details: np.ndarray

    def joined(self, other: "_Judged") -> "_Judged":
        return _Judged(np.concatenate([self.features, other.features]), np.concatenate([self.details, other.details]))


def _judged_row(real: _Judged, fake: _Judged) -> dict:
    return _kid_row(real.features, fake.features, float(fake.details.mean() / real.details.mean()))


def evaluate_kid(model: Sketch2Face, root: Path, cufs_pairs: list, cufs_fakes: list, canada_samples: dict,
                 unpaired: dict) -> dict:
    """KID x1000 of the generator's outputs (see KID_ROWS), with real-photo references."""
    try:
        judge = kid.MobileNetJudge()
    except (ImportError, FileNotFoundError, ValueError) as error:
        print(f"warning: KID skipped: {error}", file=sys.stderr)
        return {"skipped": str(error)}

    def judged(images: list[np.ndarray]) -> _Judged:
        return _Judged(judge.features(images), np.array([kid.laplacian_detail(kid.judge_input(image)) for image in images]))

    cufs_train = judged([data.read_rgb(path) for path in sorted((root / "cufs" / "train" / "photos").glob("*.jpg"))])
    photos = judged([record.photo for record in data.load_faces(("london_neutral", "3dsk"), root=root)])
    sketches = [pair.sketch for pairs, _ in unpaired.values() for pair in pairs]
    # The canvas outputs, the framing the London/3DSK photos are aligned to (the pipeline's output
    # is mapped back into each drawing's own frame).
    eval_images = [model.generate_canvas(preprocess.normalise(sketch).canvas) for sketch in sketches]
    canada_pairs, canada_fakes = canada_samples["doodle"]
    eval_outputs, canada_outputs = judged(eval_images), judged(canada_fakes)
    rows = {
        "cufs_test": _judged_row(cufs_train, judged(cufs_fakes)),
        "eval_sketches": _judged_row(photos, eval_outputs),
        "canada_doodles": _judged_row(photos, canada_outputs),
        "doodles_all": _judged_row(photos, eval_outputs.joined(canada_outputs)),
        "reference_cufs_photos": _judged_row(cufs_train, judged([pair.photo for pair in cufs_pairs])),
        "reference_canada_photos": _judged_row(photos, judged([pair.photo for pair in canada_pairs])),
    }
    for name, row in rows.items():
        row["comparison"] = KID_ROWS[name]
    definition = ("unbiased MMD^2 x1000, kernel (x.y/1280 + 1)^3, MobileNetV2 (224, quant) pooled features via "
                  "ai-edge-litert built-in kernels; each whole image resized to 224x224 (aspect not kept)")
    return {"definition": definition, **rows}


# -- grids ---------------------------------------------------------------------------


def grid(rows: list[list[np.ndarray]], cell: tuple[int, int] = (160, 200), gap: int = 4) -> np.ndarray:
    """Rows of images (grey or RGB, any size) letterboxed into equal cells on white."""
    cell_w, cell_h = cell
    columns = max(len(row) for row in rows)
    canvas = np.full((len(rows) * (cell_h + gap) + gap, columns * (cell_w + gap) + gap, 3), 255, np.uint8)
    for r, row in enumerate(rows):
        for c, image in enumerate(row):
            if image.ndim == 2:
                image = np.repeat(to_uint8_gray(image)[..., None], 3, axis=2)
            scale = min(cell_w / image.shape[1], cell_h / image.shape[0])
            resized = cv2.resize(image, (max(1, round(image.shape[1] * scale)), max(1, round(image.shape[0] * scale))),
                                 interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_CUBIC)
            top = gap + r * (cell_h + gap) + (cell_h - resized.shape[0]) // 2
            left = gap + c * (cell_w + gap) + (cell_w - resized.shape[1]) // 2
            canvas[top : top + resized.shape[0], left : left + resized.shape[1]] = resized
    return canvas


def save_rgb(path: Path, image: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), cv2.cvtColor(image, cv2.COLOR_RGB2BGR))


def markdown_table(report: dict) -> str:
    cufs = report["cufs_test"]
    identity = cufs["identity"]
    raw = cufs["raw_sketch_identity"]
    lines = [
        "| Model (CUFS test, 100 pairs) | SSIM | PSNR (dB) | MSE | L2 | rank-1 | rank-5 | mean dist |",
        "|---|---|---|---|---|---|---|---|",
        f"| **sketch2face (ours)** | **{cufs['ssim']:.3f}** | **{cufs['psnr']:.2f}** | **{cufs['mse']:.1f}** | "
        f"{cufs['l2']:.0f} | **{identity['rank1']:.0%}** | **{identity['rank5']:.0%}** | **{identity['mean_distance']:.3f}** |",
        f"| raw sketch vs photo (identity baseline) | | | | | {raw['rank1']:.0%} | {raw['rank5']:.0%} | {raw['mean_distance']:.3f} |",
    ]
    for name, ssim, psnr, mse in PUBLISHED:
        lines.append(f"| {name}, published | {ssim} | {psnr} | {mse} | | | | |")
    if identity.get("by_group"):
        lines += [
            "",
            "| CUFS test, by group (among all 100 photos) | faces | rank-1 | rank-5 | raw sketch rank-1 | raw sketch rank-5 |",
            "|---|---|---|---|---|---|",
        ]
        for group, result in identity["by_group"].items():
            baseline = raw["by_group"][group]
            lines.append(f"| {group} | {result['faces']} | {result['rank1']:.0%} | {result['rank5']:.0%} | "
                         f"{baseline['rank1']:.0%} | {baseline['rank5']:.0%} |")
    lines += [
        "",
        "| Held-out faces/canada (40 people), sketch style | rank-1 | rank-5 | mean dist | SSIM | dlib finds a face |",
        "|---|---|---|---|---|---|",
    ]
    for style, result in report["canada"].items():
        lines.append(
            f"| {style} | {result['rank1']:.0%} | {result['rank5']:.0%} | {result['mean_distance']:.3f} | "
            f"{result['ssim']:.3f} | {result['face_detected']:.0%} |"
        )
    lines += ["", "| Unpaired sketches | count | mean saturation | mid-tone fraction | canvas-edge step (grey levels) |",
              "|---|---|---|---|---|"]
    for folder, result in report["unpaired"].items():
        step = result.get("seam_step")
        lines.append(f"| {folder} | {result['count']} | {result['mean_saturation']:.3f} | {result['midtone_fraction']:.2f} "
                     f"| {'n/a' if step is None else f'{step:.1f}'} |")
    lines += kid_table(report.get("kid"))
    return "\n".join(lines) + "\n"


def kid_table(result: dict | None) -> list[str]:
    """The KID rows of metrics.md (lower is better; nothing when KID was not run)."""
    if not result:
        return []
    if "skipped" in result:
        return ["", f"KID x1000 was not measured: {result['skipped']}"]
    lines = ["", "| Realism, KID x1000 (MobileNetV2 features; lower is better) | generated | real | KID x1000 "
                 "| detail, generated / real |",
             "|---|---|---|---|---|"]
    for name in KID_ROWS:
        row = result[name]
        value = "n/a" if row["kid_x1000"] is None else f"{row['kid_x1000']:.0f}"
        detail = f"{row['detail_ratio']:.2f}" if row.get("detail_ratio") is not None else "n/a"
        lines.append(f"| {row['comparison']} | {row['generated']} | {row['real']} | {value} | {detail} |")
    lines.append("")
    lines.append("Detail: the mean absolute Laplacian of the judge's 224x224 grey view, generated over real. "
                 "KID rises steeply as it falls (docs/training.md, \"The face's last resampling\").")
    return lines


def run(model_path: str | None, out_dir: Path, root: Path | None = None, shift_average: bool = True) -> dict:
    root = root or data.default_data_root()
    started = time.monotonic()
    model = Sketch2Face.from_pretrained(model_path, upscale=False, shift_average=shift_average)  # the generator alone: evaluate_upscaler judges the rest
    embedder = FaceEmbedder()
    cufs, cufs_pairs, cufs_fakes = evaluate_cufs(model, embedder, root)
    canada, canada_samples = evaluate_canada(model, embedder, root)
    unpaired = evaluate_unpaired(model, root)
    report = {
        "model": str(model_path or "weights/"),
        "shift_average": shift_average,
        "cufs_test": cufs,
        "canada": canada,
        "unpaired": {},
        "metric_definition": "RGB uint8 at 200x250 (CUFS photo size), data_range=255; SSIM 7x7 uniform window, mean over channels",
        "seconds": 0.0,
    }
    examples = [Pair(path.stem, to_uint8_gray(preprocess.load_grayscale(path)), None)
                for path in sorted(EXAMPLES_DIR.glob("*.png"))]  # present in a clone, not in an installed package
    drawn = {"examples": (examples, generate_all(model, examples, None))} if examples else {}
    for folder, (pairs, fakes) in {**unpaired, **drawn}.items():
        likeness = [photo_likeness(fake) for fake in fakes]
        report["unpaired"][folder] = {
            "count": len(fakes),
            **{key: float(np.mean([entry[key] for entry in likeness])) for key in likeness[0]},
            "seam_step": mean_seam_step(fakes, [preprocess.normalise(pair.sketch) for pair in pairs]),
            "per_image": likeness,
        }
    report["kid"] = evaluate_kid(model, root, cufs_pairs, cufs_fakes, canada_samples, unpaired)
    report["seconds"] = round(time.monotonic() - started, 1)

    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "metrics.json").write_text(json.dumps(report, indent=2))
    (out_dir / "metrics.md").write_text(markdown_table(report))
    save_rgb(out_dir / "grid_cufs_test.png", grid([[p.sketch, f, p.photo] for p, f in zip(cufs_pairs[:10], cufs_fakes[:10])]))
    canada_rows = []
    for index in range(min(6, len(canada_samples["doodle"][0]))):
        row = [canada_samples["doodle"][0][index].photo]
        for style in styles.PHOTO_STYLES:
            pairs, fakes = canada_samples[style]
            row += [pairs[index].sketch, fakes[index]]
        canada_rows.append(row)
    save_rgb(out_dir / "grid_canada.png", grid(canada_rows, cell=(128, 160)))
    for folder, (pairs, fakes) in unpaired.items():
        save_rgb(out_dir / f"grid_{folder}.png", grid([[p.sketch, f] for p, f in zip(pairs, fakes)], cell=(200, 200)))
    return report


def examples_grid(model: Sketch2Face, examples_dir: Path, out_path: Path, columns: int = 2) -> Path:
    """The README's grid: the project's own drawn examples | what the model makes of them."""
    paths = sorted(examples_dir.glob("*.png"))
    cells = []
    for path in paths:
        result = model.generate(path)
        cells.append([np.asarray(Image.open(path).convert("RGB")), np.asarray(result.image)])
    rows = [sum(cells[index : index + columns], []) for index in range(0, len(cells), columns)]
    save_rgb(out_path, grid(rows, cell=(192, 240)))
    return out_path


def side_by_side(model_paths: list[str], out_path: Path, root: Path | None = None,
                 examples_out_path: Path | None = None, per_row: int = 2,
                 shift_average: tuple[bool, ...] = (True,)) -> Path:
    """One grid that shows the same inputs through each generator: the project's examples, then
    the eval doodles and edge maps and CUFS test sketches with their true photos. Each cell group
    is the input, one output per model in the order given, then the photo if there is one.
    ``examples_out_path`` also gets the examples' rows alone: only what the project made, so docs
    may keep it. ``shift_average``: the modes each model runs in, one output per mode."""
    models = [Sketch2Face.from_pretrained(path, shift_average=averaged)
              for path, averaged in variants(model_paths, shift_average)]
    blank = np.full((8, 8, 3), 255, np.uint8)

    def groups(inputs: list[tuple[np.ndarray, np.ndarray | None]]) -> list[list[np.ndarray]]:
        return [[sketch, *(np.asarray(model(sketch)) for model in models), blank if photo is None else photo]
                for sketch, photo in inputs]

    def save(cell_groups: list[list[np.ndarray]], path: Path) -> None:
        rows = [sum(cell_groups[index : index + per_row], []) for index in range(0, len(cell_groups), per_row)]
        save_rgb(path, grid(rows, cell=(128, 160)))

    examples = groups([(np.asarray(Image.open(path).convert("L")), None) for path in sorted(Path("examples").glob("*.png"))])
    if examples_out_path is not None:
        save(examples, examples_out_path)
    save(examples + groups(_data_inputs(root or data.default_data_root())), out_path)
    return out_path


def _data_inputs(root: Path) -> list[tuple[np.ndarray, np.ndarray | None]]:
    """The eval doodles and edge maps (no photo), then four CUFS test sketches with their photos."""
    inputs = []
    for folder, count in (("doodles", 5), ("edgemaps", 3)):
        paths = sorted((root / "eval" / folder).glob("*.jpg"), key=lambda p: (len(p.stem), p.stem))[:count]
        inputs += [(cv2.imread(str(path), cv2.IMREAD_GRAYSCALE), None) for path in paths]
    test = root / "cufs" / "test"
    for photo_path in sorted((test / "photos").glob("*.jpg"))[:4]:
        inputs.append((cv2.imread(str(test / "sketches" / photo_path.name), cv2.IMREAD_GRAYSCALE), data.read_rgb(photo_path)))
    return inputs


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default=None, help="weights folder or Hub repo id (default: weights/)")
    parser.add_argument("--out", type=Path, default=Path("outputs/eval"), help="where metrics and grids go")
    parser.add_argument("--data-root", type=Path, default=None)
    parser.add_argument("--examples-grid", type=Path, default=None,
                        help="also draw examples/*.png and their outputs into this PNG (for the README); "
                             "with --side-by-side, the examples through each model")
    parser.add_argument("--select", nargs="+", metavar="MODEL", default=None,
                        help="only compare these generators on CUFS train (for choosing one; test is not read)")
    parser.add_argument("--doodle-draws", type=int, default=1, metavar="N",
                        help="with --select: judge the doodles as the mean over N draws of them (default 1)")
    parser.add_argument("--validation-every", type=int, default=0, metavar="N",
                        help="with --select: also report the CUFS train pairs that `train --cufs-validation-every N` kept out")
    parser.add_argument("--side-by-side", nargs="+", metavar="MODEL", default=None,
                        help="only draw OUT/grid_side_by_side.png: the same inputs through each of these generators")
    parser.add_argument("--compare", nargs=2, metavar=("REFERENCE", "CANDIDATE"), type=Path, default=None,
                        help="only compare two metrics.json files face by face (runs no model)")
    parser.add_argument("--shift-average", choices=sorted(SHIFT_AVERAGE_MODES), default="on",
                        help="average the generator over shifts of the drawing, as serving does (default on); "
                             "'both' (--select, --side-by-side): each model without, then with")
    args = parser.parse_args(argv)
    modes = SHIFT_AVERAGE_MODES[args.shift_average]
    if len(modes) > 1 and not (args.select or args.side_by_side):
        parser.error("--shift-average both needs --select or --side-by-side")
    if args.compare:
        reports = []
        for path in args.compare:
            try:
                reports.append(json.loads(path.read_text()))
            except (OSError, ValueError) as error:
                parser.error(f"--compare: can't read {path} as a metrics.json: {error}")
        try:
            compared = compare_reports(*reports)
        except ValueError as error:
            parser.error(f"--compare: {error}")
        if not compared:
            parser.error("--compare: the two reports share no identity result with per-face ranks")
        print(comparison_table(compared), end="")
        return
    if args.side_by_side:
        print(f"wrote {side_by_side(args.side_by_side, args.out / 'grid_side_by_side.png', args.data_root, args.examples_grid, shift_average=modes)}")
        return
    if args.select:
        if args.doodle_draws < 1:
            parser.error(f"--doodle-draws must be at least 1, not {args.doodle_draws}")
        results = select(args.select, args.out, args.data_root, args.validation_every, shift_average=modes,
                         doodle_draws=args.doodle_draws)
        print(selection_table(results), end="")
        print(f"wrote {args.out}/selection.json")
        return
    if args.examples_grid:
        model = Sketch2Face.from_pretrained(args.model, shift_average=modes[0])
        print(f"wrote {examples_grid(model, Path('examples'), args.examples_grid)}")
    report = run(args.model, args.out, args.data_root, shift_average=modes[0])
    print(markdown_table(report))
    print(f"wrote {args.out}/metrics.json, metrics.md and grids in {report['seconds']} s")


if __name__ == "__main__":
    main()
