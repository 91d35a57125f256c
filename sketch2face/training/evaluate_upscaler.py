"""Judge the x2 upscaler against plain resizing, on held-out photos and on generated faces.

    python -m sketch2face.training.evaluate_upscaler --upscaler runs/upscaler/upscaler
    python -m sketch2face.training.evaluate_upscaler                # the one in weights/upscaler
    python -m sketch2face.training.evaluate_upscaler --examples-grid docs/upscaler_crops.jpg --only-grid
    python -m sketch2face.training.evaluate_upscaler --select runs/upscaler_gen/upscaler --out outputs/select_upscaler

Every method takes a 256x320 canvas-framed face to 512x640: bilinear, bicubic and Lanczos resizing
(OpenCV) against the upscaler. Three measurements:

1. **Fidelity, faces/canada (held out, 40 photos).** Each photo is aligned by its pupils to the
   512x640 framing from its own pixels (its faces are that big already), and shrunk to the canvas
   by area averaging, as training makes its canvas photos. "soft" blurs the canvas photo first
   (Gaussian, sigma 1 px), closer to what the generator paints. PSNR and SSIM of each method's
   512x640 result against the real one, on the inner-face crop (below) and on the whole image.
2. **Sharpness at full size, and no checkerboard.** Detail is judged on the inner-face crop at 1:1, a 224x224 square
   from the eyes to the mouth, so the judge sees the 512x640 pixels themselves: KID x1000 (the
   MobileNetV2 judge of ``kid.py``) against the real Canada crops, and the mean absolute
   Laplacian of the grey crop, as a fraction of the real crops' (1.0 = as much fine detail as a
   photo; plain resizing of a soft face gives much less). ``checkerboard_peaks`` is how far the
   whole image's spectrum stands out at the frequencies of stage 4's decoder checkerboard
   (about 1: none).
3. The same for **generated faces**: the generator's canvas outputs for the CUFS test sketches and
   for synthetic doodles of the Canada photos, upscaled by each method. There is no true 512x640
   photo for them, so only KID and the detail ratio apply; real photos of other people (3DSK, at
   their own resolution) give the floor.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import cv2
import numpy as np
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from . import data, generated_pairs, kid, styles
from .evaluate import checkerboard_peaks, grid, save_rgb
from .. import preprocess
from ..networks import FaceUpscaler
from ..pipeline import UPSCALER_SUBFOLDER, DEFAULT_WEIGHTS_DIR, Sketch2Face, load_generator, load_shaded_sketch_generator

RESIZERS = {"bilinear": cv2.INTER_LINEAR, "bicubic": cv2.INTER_CUBIC, "lanczos": cv2.INTER_LANCZOS4}
FULL_SIZE = (512, 640)
# 224x224 at 512x640 from just above the eyes (y ~326) to below the mouth (y ~472), centred on the face.
FACE_CROP = (slice(272, 496), slice(144, 368))
SOFT_SIGMA = 1.0
CHECKERBOARD_PERIODS = (4, 8, 16)  # stage 4's canvas periods (2, 4, 8) at 512x640


def face_crop(image: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(image[FACE_CROP])


def served_pipeline(generator_model: str | None, upscaler_dir: Path) -> Sketch2Face:
    """The generator(s) and the upscaler as the app would serve them (fast path included)."""
    return Sketch2Face(load_generator(generator_model), upscaler=FaceUpscaler.from_pretrained(upscaler_dir),
                       shaded_sketch_generator=load_shaded_sketch_generator(generator_model))


def methods(pipeline: Sketch2Face) -> dict:
    resizers = {name: (lambda image, flag=flag: cv2.resize(image, FULL_SIZE, interpolation=flag)) for name, flag in RESIZERS.items()}
    return {**resizers, "upscaler": pipeline.upscale}


def fidelity(real: list[np.ndarray], upscaled: list[np.ndarray]) -> dict[str, float]:
    def mean(function, crop):
        return float(np.mean([function(crop(a), crop(b)) for a, b in zip(real, upscaled)]))
    whole = lambda image: image  # noqa: E731
    return {
        "psnr_face": mean(lambda a, b: peak_signal_noise_ratio(a, b, data_range=255), face_crop),
        "ssim_face": mean(lambda a, b: structural_similarity(a, b, channel_axis=2, data_range=255), face_crop),
        "psnr_whole": mean(lambda a, b: peak_signal_noise_ratio(a, b, data_range=255), whole),
        "ssim_whole": mean(lambda a, b: structural_similarity(a, b, channel_axis=2, data_range=255), whole),
    }


def load_judge(real_crops: list[np.ndarray]):
    """The KID judge and its features of the real crops; (None, None) with a warning when it can't run."""
    try:
        judge = kid.MobileNetJudge()
        return judge, judge.features(real_crops)
    except (ImportError, FileNotFoundError, ValueError) as error:
        print(f"warning: KID skipped: {error}", file=sys.stderr)
        return None, None


def sharpness(judge, real_features: np.ndarray, real_detail: float, upscaled: list[np.ndarray]) -> dict[str, float | None]:
    crops = [face_crop(image) for image in upscaled]
    row: dict[str, float | None] = {"detail_vs_real": float(np.mean([kid.laplacian_detail(crop) for crop in crops]) / real_detail),
                                    "checkerboard_peaks": float(np.mean([checkerboard_peaks(image, CHECKERBOARD_PERIODS) for image in upscaled]))}
    row["kid_x1000_face_crop"] = None
    if judge is not None:
        try:
            row["kid_x1000_face_crop"] = kid.kid_x1000(real_features, judge.features(crops))
        except ValueError as error:  # too few images (tiny test data)
            print(f"warning: KID skipped: {error}", file=sys.stderr)
    return row


def generated_faces(model: Sketch2Face, root: Path, records: list[data.FaceRecord]) -> dict[str, list[np.ndarray]]:
    """The generator's canvas faces (256x320) for the CUFS test sketches and Canada doodles."""
    cufs_sketches = [cv2.imread(str(path), cv2.IMREAD_GRAYSCALE)
                     for path in sorted((root / "cufs" / "test" / "sketches").glob("*.jpg"))]
    doodles = [styles.make_sketch("doodle", record.photo, np.random.default_rng([0, index]), record.landmarks)
               for index, record in enumerate(records)]
    canvas = lambda sketch: model.generate_canvas(preprocess.normalise(sketch).canvas)  # noqa: E731
    return {"cufs_test": [canvas(sketch) for sketch in cufs_sketches], "canada_doodles": [canvas(sketch) for sketch in doodles]}


def run(upscaler_dir: Path, generator_model: str | None, out_dir: Path, root: Path | None = None) -> dict:
    root = root or data.default_data_root()
    started = time.monotonic()
    pipeline = served_pipeline(generator_model, upscaler_dir)
    records = data.load_faces(("canada",), root=root, allow_held_out=True, output_scale=2)
    data.add_landmarks(records)  # for the doodles
    real = [record.photo_full for record in records]
    inputs = {"clean": [record.photo for record in records],
              "soft": [cv2.GaussianBlur(record.photo, (0, 0), SOFT_SIGMA) for record in records]}
    judge, real_features = load_judge([face_crop(image) for image in real])
    real_detail = float(np.mean([kid.laplacian_detail(face_crop(image)) for image in real]))
    generated = generated_faces(pipeline, root, records)

    report: dict = {"upscaler": str(upscaler_dir), "generator": str(generator_model or "weights/"), "canada_photos": len(records),
                    "face_crop": "rows 272-495, columns 144-367 of 512x640", "soft_sigma_px": SOFT_SIGMA,
                    "real_detail": real_detail, "photos": {}, "generated": {}}
    samples: dict[str, list[np.ndarray]] = {}
    for method, apply in methods(pipeline).items():
        for kind, images in inputs.items():
            upscaled = [apply(image) for image in images]
            report["photos"].setdefault(kind, {})[method] = {**fidelity(real, upscaled),
                                                             **sharpness(judge, real_features, real_detail, upscaled)}
        for kind, faces in generated.items():
            upscaled = [apply(face) for face in faces]
            report["generated"].setdefault(kind, {})[method] = sharpness(judge, real_features, real_detail, upscaled)
            samples[f"{kind}/{method}"] = upscaled[:2]
    # The floor for generated faces: real photos of other people (3DSK, at their own resolution).
    others = [record.photo_full for record in data.load_faces(("3dsk",), root=root, output_scale=2)]
    report["reference_3dsk_photos"] = sharpness(judge, real_features, real_detail, others)
    report["seconds"] = round(time.monotonic() - started, 1)
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "upscaler_metrics.json").write_text(json.dumps(report, indent=2))
    (out_dir / "upscaler_metrics.md").write_text(markdown_table(report))
    # One row per kind of face: its first two faces, each as bicubic | upscaler.
    rows = [[face_crop(samples[f"{kind}/{method}"][index]) for index in range(2) for method in ("bicubic", "upscaler")]
            for kind in generated]
    save_rgb(out_dir / "grid_upscaler_crops.png", grid(rows, cell=(224, 224)))
    return report


SELECT_SEED = 1000  # the validation sketches: another draw than any training run's


def select(candidates: list[Path], generator_model: str | None, out_dir: Path, root: Path | None = None, draws: int = 3) -> dict:
    """Choose on people no upscaler trained on: the generator's faces for the held-out side of
    ``generated_pairs.split_people`` (no augmentation, so the fixed crop is the inner face),
    bicubic against each candidate, judged at 512x640 against the same people's true photos."""
    pairs, described = generated_pairs.pairs_for_side(out_dir, root, generator_model, draws, SELECT_SEED, side="validation")
    real = list(pairs.photos)
    judge, real_features = load_judge([face_crop(image) for image in real])
    real_detail = float(np.mean([kid.laplacian_detail(face_crop(image)) for image in real]))
    bicubic = [cv2.resize(face, FULL_SIZE, interpolation=RESIZERS["bicubic"]) for face in pairs.faces]
    upscaled_by = {"bicubic": bicubic}
    for candidate in candidates:
        upscale = served_pipeline(generator_model, candidate).upscale
        upscaled_by[str(candidate)] = [upscale(face) for face in pairs.faces]
    rows = {name: {**sharpness(judge, real_features, real_detail, upscaled), "psnr_face": fidelity(real, upscaled)["psnr_face"],
                   "colour_shift": colour_shift(bicubic, upscaled)}
            for name, upscaled in upscaled_by.items()}
    report = {"validation": described, "rows": rows}
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "upscaler_select.json").write_text(json.dumps(report, indent=2))
    return report


def colour_shift(reference: list[np.ndarray], upscaled: list[np.ndarray]) -> float:
    """How far a method recolours the face: the mean absolute difference, in grey levels, of the
    inner-face crops shrunk 16x (colour and shading, no detail) against the reference's."""
    def coarse(image):
        return cv2.resize(face_crop(image), (14, 14), interpolation=cv2.INTER_AREA).astype(np.float32)
    return float(np.mean([np.abs(coarse(a) - coarse(b)).mean() for a, b in zip(reference, upscaled)]))


def select_table(report: dict) -> str:
    described = report["validation"]
    lines = [f"Held-out people: {described['faces']} generated faces of {described['photos']} photos of {described['people']} people "
             f"({described['generator']}), 512x640 inner-face crop against their own photos.", "",
             "| method | KID x1000 | detail vs real | PSNR face (dB) | checkerboard peaks | colour shift vs bicubic |",
             "|---|---|---|---|---|---|"]
    for name, row in report["rows"].items():
        kid_text = "n/a" if row["kid_x1000_face_crop"] is None else f"{row['kid_x1000_face_crop']:.1f}"
        lines.append(f"| {name} | {kid_text} | {row['detail_vs_real']:.2f} | {row['psnr_face']:.2f} | "
                     f"{row['checkerboard_peaks']:.2f} | {row['colour_shift']:.1f} |")
    return "\n".join(lines) + "\n"


def examples_grid(upscaler_dir: Path, generator_model: str | None, examples_dir: Path, out_path: Path) -> Path:
    """For the docs: the inner face of each project-drawn example's generated face at 512x640,
    bicubic beside the upscaler, at 1:1 (two examples a row)."""

    pipeline = served_pipeline(generator_model, upscaler_dir)
    cells = []
    for path in sorted(examples_dir.glob("*.png")):
        face = pipeline.generate_canvas(preprocess.normalise(path).canvas)
        cells += [face_crop(cv2.resize(face, FULL_SIZE, interpolation=cv2.INTER_CUBIC)), face_crop(pipeline.upscale(face))]
    rows = [cells[index: index + 4] for index in range(0, len(cells), 4)]
    save_rgb(out_path, grid(rows, cell=(224, 224)))
    return out_path


def markdown_table(report: dict) -> str:
    def number(value, digits=1):
        return "n/a" if value is None else f"{value:.{digits}f}"
    lines = [f"Upscaler {report['upscaler']} vs resizing, 256x320 -> 512x640; face crop {report['face_crop']}.", "",
             "| Canada photos (held out) | method | PSNR face | SSIM face | PSNR whole | SSIM whole | detail vs real | checkerboard peaks | KID x1000 face crop |",
             "|---|---|---|---|---|---|---|---|---|"]
    for kind, rows in report["photos"].items():
        for method, row in rows.items():
            lines.append(f"| {kind} | {method} | {row['psnr_face']:.2f} | {row['ssim_face']:.3f} | {row['psnr_whole']:.2f} | "
                         f"{row['ssim_whole']:.3f} | {row['detail_vs_real']:.2f} | {row['checkerboard_peaks']:.2f} | "
                         f"{number(row['kid_x1000_face_crop'])} |")
    lines += ["", f"| generated faces ({report['generator']}) | method | detail vs real | checkerboard peaks | KID x1000 face crop |", "|---|---|---|---|---|"]
    for kind, rows in report["generated"].items():
        for method, row in rows.items():
            lines.append(f"| {kind} | {method} | {row['detail_vs_real']:.2f} | {row['checkerboard_peaks']:.2f} | "
                         f"{number(row['kid_x1000_face_crop'])} |")
    reference = report["reference_3dsk_photos"]
    lines.append(f"| real 3DSK photos (other people) | | {reference['detail_vs_real']:.2f} | {reference['checkerboard_peaks']:.2f} | "
                 f"{number(reference['kid_x1000_face_crop'])} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--upscaler", type=Path, default=DEFAULT_WEIGHTS_DIR / UPSCALER_SUBFOLDER, help="an upscaler folder")
    parser.add_argument("--generator", default=None, help="the generator whose faces are upscaled (default: weights/)")
    parser.add_argument("--out", type=Path, default=Path("outputs/eval"))
    parser.add_argument("--data-root", type=Path, default=None)
    parser.add_argument("--examples-grid", type=Path, default=None,
                        help="also write this PNG: examples/*.png's inner faces, bicubic | upscaler, two examples a row")
    parser.add_argument("--only-grid", action="store_true", help="write the --examples-grid and stop")
    parser.add_argument("--select", type=Path, nargs="+", default=None, metavar="UPSCALER",
                        help="compare these upscaler folders with bicubic on held-out training people (for choosing), and stop")
    args = parser.parse_args(argv)
    if args.select:
        print(select_table(select(args.select, args.generator, args.out, args.data_root)), end="")
        return
    if args.examples_grid:
        print(f"wrote {examples_grid(args.upscaler, args.generator, Path('examples'), args.examples_grid)}")
    if args.only_grid:
        return
    report = run(args.upscaler, args.generator, args.out, args.data_root)
    print(markdown_table(report), end="")
    print(f"wrote {args.out}/upscaler_metrics.json, upscaler_metrics.md and grid_upscaler_crops.png in {report['seconds']} s")


if __name__ == "__main__":
    main()
