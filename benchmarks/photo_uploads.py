"""Colour photos uploaded instead of sketches: how well app.py spots them, and whether turning
them into a pencil sketch first (what the app does) gives a better face than feeding the photo.

    python -m benchmarks.photo_uploads [--data ../shared/data]

Needs the third-party data set (read at run time, never copied) and dlib (requirements-dev).
Prints:
1. the detector (sketch2face.photo_to_sketch.looks_like_a_colour_photo): how many drawings and photos it flags,
   including the drawings re-lit like a phone photo under a warm lamp;
2. on the held-out Canada faces (evaluation only), the face made from the photo itself vs from
   its pencil sketch: identity (dlib rank-1 among the 40 photos), SSIM to the photo, and colour
   saturation next to the photos' own;
3. what the check and the sketching cost per upload.
"""

from __future__ import annotations

import argparse
import io
import statistics
import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parent.parent


def lamp_lit(path: Path) -> bytes:
    """The image as a phone photo under a warm lamp: yellow cast, light falling off to a corner."""
    pixels = np.asarray(Image.open(path).convert("RGB"), dtype=np.float32)
    height, width = pixels.shape[:2]
    ys, xs = np.mgrid[0:height, 0:width]
    light = 1.0 - 0.35 * (((xs - 0.3 * width) / width) ** 2 + ((ys - 0.3 * height) / height) ** 2)
    buffer = io.BytesIO()
    Image.fromarray((pixels * light[..., None] * np.array([1.0, 0.88, 0.70])).clip(0, 255).astype(np.uint8)).save(buffer, "PNG")
    return buffer.getvalue()


def detector_table(data: Path) -> list[str]:
    from sketch2face import photo_to_sketch

    drawings = {
        "examples/ (this repo)": sorted((ROOT / "examples").glob("*.png")),
        "CUFS artist sketches": sorted((data / "cufs").glob("*/sketches/*.jpg")),
        "eval doodles and edge maps": sorted((data / "eval").glob("*/*.jpg")),
    }
    photos = {
        "CUFS photos": sorted((data / "cufs").glob("*/photos/*.jpg")),
        "Face Research Lab photos (all sets)": sorted((data / "faces").glob("*/*.jpg")),
    }
    lines = ["| images | count | flagged as a colour photo |", "|---|---|---|"]
    for label, paths in drawings.items():
        lines.append(f"| {label} | {len(paths)} | {sum(photo_to_sketch.looks_like_a_colour_photo(path) for path in paths)} |")
        lines.append(f"| {label}, under a warm lamp | {len(paths)} | {sum(photo_to_sketch.looks_like_a_colour_photo(lamp_lit(path)) for path in paths)} |")
    for label, paths in photos.items():
        lines.append(f"| {label} | {len(paths)} | {sum(photo_to_sketch.looks_like_a_colour_photo(path) for path in paths)} |")
    return lines


def sketch_first_table(data: Path) -> tuple[list[str], list[float], list[float]]:
    import cv2

    import app
    from sketch2face import photo_to_sketch
    from sketch2face.training import evaluate

    pipeline = app.load_pipeline()
    embedder = evaluate.FaceEmbedder()
    paths = sorted((data / "faces" / "canada").glob("*.jpg"))
    photos = [np.asarray(Image.open(path).convert("RGB")) for path in paths]
    height, width = photos[0].shape[:2]
    box = evaluate.fallback_box(width, height)
    real = np.stack([embedder(photo, box)[0] for photo in photos])
    check_s, sketch_s = [], []
    rows = {}
    for label in ("the photo itself", "its pencil sketch (what the app does)"):
        faces = []
        for path in paths:
            if label.startswith("its"):
                started = time.perf_counter()
                photo_to_sketch.looks_like_a_colour_photo(path)
                check_s.append(time.perf_counter() - started)
                started = time.perf_counter()
                source = photo_to_sketch.pencil_sketch(path)
                sketch_s.append(time.perf_counter() - started)
            else:
                source = path
            face = np.asarray(pipeline(source))
            faces.append(cv2.resize(face, (width, height), interpolation=cv2.INTER_AREA) if face.shape[:2] != (height, width) else face)
        identity = evaluate.identification(np.stack([embedder(face, box)[0] for face in faces]), real)
        ssim = statistics.mean(evaluate.image_metrics(photo, face)["ssim"] for photo, face in zip(photos, faces))
        saturation = statistics.median(evaluate.photo_likeness(face)["mean_saturation"] for face in faces)
        rows[label] = (identity, ssim, saturation)
    photo_saturation = statistics.median(evaluate.photo_likeness(photo)["mean_saturation"] for photo in photos)
    lines = [
        f"| face made from ({len(paths)} Canada photos) | rank-1 | rank-5 | SSIM to the photo | saturation (photos: {photo_saturation:.2f}) |",
        "|---|---|---|---|---|",
    ]
    for label, (identity, ssim, saturation) in rows.items():
        lines.append(f"| {label} | {identity['rank1']:.0%} | {identity['rank5']:.0%} | {ssim:.3f} | {saturation:.2f} |")
    return lines, check_s, sketch_s


def main(argv: list[str] | None = None) -> int:
    from sketch2face.training.data import default_data_root

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=None, help="the shared data folder (default: $SKETCH2FACE_DATA, else ../shared/data)")
    args = parser.parse_args(argv)
    data = args.data or default_data_root()
    if not (data / "cufs").is_dir():
        print(f"error: no data set at {data} (use --data)", file=sys.stderr)
        return 2
    print("\n".join(detector_table(data)))
    print()
    lines, check_s, sketch_s = sketch_first_table(data)
    print("\n".join(lines))
    print(f"\nper upload: the photo check {1000 * statistics.median(check_s):.0f} ms, the pencil sketch "
          f"{1000 * statistics.median(sketch_s):.0f} ms (medians over {len(check_s)} photos of 480x640)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
