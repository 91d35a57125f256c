"""What the full-size face costs: the learned x2 upscaler against bicubic, and against the preview.

    python -m benchmarks.full_size [--runs 15] [--threads 2]

In this process, one example drawing (512x640) through ``Sketch2Face.generate`` and the PNG the
page serves (``web_files.save_result``), three ways, interleaved so that background load hits them
alike: full size with the weights' upscaler (what Generate and the API do when ``weights/`` has
one), full size enlarged bicubic (``upscale=False``), and the canvas-size live preview. Prints
medians and the ratios between them, measured in the same run.
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import torch

from sketch2face import Sketch2Face
from sketch2face.web_files import save_result

DRAWING = Path(__file__).resolve().parent.parent / "examples" / "01_short_hair.png"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=15)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    upscaling, resizing = Sketch2Face.from_pretrained(), Sketch2Face.from_pretrained(upscale=False)
    if upscaling.upscaler is None:
        print("note: the weights have no upscaler/, so the first two rows both resize bicubic")
    paths = {"full size, upscaler": lambda: upscaling.generate(DRAWING),
             "full size, bicubic": lambda: resizing.generate(DRAWING),
             "live preview (canvas size)": lambda: resizing.generate(DRAWING, full_size=False)}
    seconds: dict[str, list[float]] = {name: [] for name in paths}
    sizes = {}
    for name, run in paths.items():  # warm-up
        image = run().image
        save_result(image)
        sizes[name] = image.size
    for _ in range(args.runs):
        for name, run in paths.items():
            started = time.perf_counter()
            save_result(run().image)
            seconds[name].append(time.perf_counter() - started)
    medians = {name: statistics.median(values) for name, values in seconds.items()}
    print(f"{DRAWING.name}, {args.runs} interleaved runs, {args.threads} torch threads")
    for name, median in medians.items():
        print(f"  {name:28s} {sizes[name][0]}x{sizes[name][1]}  median {1000 * median:.0f} ms")
    print(f"  upscaler / bicubic: {medians['full size, upscaler'] / medians['full size, bicubic']:.2f}x; "
          f"upscaler / preview: {medians['full size, upscaler'] / medians['live preview (canvas size)']:.2f}x")


if __name__ == "__main__":
    main()
