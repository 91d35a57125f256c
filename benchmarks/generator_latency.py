"""CPU latency of generator designs against the reference pix2pix ``unet_256``, in one run.

    python -m benchmarks.generator_latency --repeats 15

``python -m benchmarks`` runs it too and puts its rows into the report. Every variant runs in
eval mode on one sketch (batch 1), plain and through the serving fast path (sketch2face.fastpath:
BatchNorm folded, channels-last), interleaved round-robin with the reference so background load
hits them all alike (bench.time_interleaved). Printed: median wall and CPU milliseconds and their
ratios to the reference's medians (goal: each way to a 512x640 face, FULL_SIZE_DESIGNS, <= 1.0x;
bench.GOALS).
Weights are random: latency does not depend on them.

Variants (the canvas is 256 wide x 320 tall):
- ``v1 transposed``: the shipped architecture (stage 4), transposed convolutions, 256x320 out;
- ``v2 resize``: the same U-Net with resize + 3x3 convolution upsampling, 256x320 out;
- ``v2 resize + refiner``: that U-Net plus the x2 refiner, 512x640 out (``output_scale=2``);
- ``v1 transposed + upscaler``: what the app serves, stage 4 and then the separate x2
  ``FaceUpscaler`` (``weights/upscaler``), 512x640 out;
- ``U-Net at 512x640``: the other way to full size, a 7-level resize U-Net run on the sketch
  resized to 512x640 (the pipeline's canvas is 256x320, so it would resize first).
"""

from __future__ import annotations

import argparse
import os

import torch
import torch.nn.functional as F
from torch import nn

from sketch2face.fastpath import optimise_for_inference
from sketch2face.networks import FaceUpscaler, UNetGenerator, count_parameters

from .bench import inference_runner, reference_unet256, time_interleaved
from sketch2face.training.machine import cpu_description

CANVAS = (320, 256)  # (height, width)
REFERENCE = "reference unet_256 (3x256x256)"
FULL_SIZE_DESIGN = "v2 resize + refiner (512x640 out)"  # what training.config's v2 defaults build
SERVED_FULL_SIZE = "v1 transposed + upscaler (512x640 out)"  # what the app serves
FULL_SIZE_DESIGNS = (FULL_SIZE_DESIGN, SERVED_FULL_SIZE)  # the 512x640 paths held to the latency goal


class ResizedInput(nn.Module):
    """Runs a generator on the canvas sketch resized by ``factor`` (bilinear)."""

    def __init__(self, generator: nn.Module, factor: int):
        super().__init__()
        self.generator, self.factor = generator, factor

    def forward(self, sketch: torch.Tensor) -> torch.Tensor:
        return self.generator(F.interpolate(sketch, scale_factor=self.factor, mode="bilinear", align_corners=False))


class Upscaled(nn.Sequential):
    """A canvas-size generator followed by the x2 upscaler, as the pipeline runs them."""

    def __init__(self, generator: nn.Module, upscaler: nn.Module):
        super().__init__(generator, upscaler)


def variants() -> dict[str, tuple[nn.Module, torch.Tensor]]:
    torch.manual_seed(0)
    sketch = torch.rand(1, 1, *CANVAS) * 2 - 1
    designs = {
        "v1 transposed (256x320 out)": UNetGenerator(),
        "v2 resize (256x320 out)": UNetGenerator(upsample="resize"),
        FULL_SIZE_DESIGN: UNetGenerator(upsample="resize", output_scale=2),
        "U-Net at 512x640 (512x640 out)": ResizedInput(UNetGenerator(upsample="resize", num_downs=7), 2),
        SERVED_FULL_SIZE: Upscaled(UNetGenerator(), FaceUpscaler()),
    }
    return {name: (generator.eval(), sketch) for name, generator in designs.items()}


def measure(repeats: int) -> list[dict]:
    """One row per variant, the reference first; ratios are to the reference in this same run."""
    reference = reference_unet256().eval()
    runs = {REFERENCE: inference_runner(reference, torch.randn(1, 3, 256, 256))}
    rows = {REFERENCE: {"parameters": count_parameters(reference), "output": (256, 256)}}
    for name, (generator, sketch) in variants().items():
        with torch.inference_mode():
            output = tuple(generator(sketch).shape[-2:])
        if isinstance(generator, ResizedInput):
            fast = ResizedInput(optimise_for_inference(generator.generator), generator.factor)
        elif isinstance(generator, Upscaled):
            fast = Upscaled(*(optimise_for_inference(part) for part in generator))
        else:
            fast = optimise_for_inference(generator)
        runs[name] = inference_runner(generator, sketch)
        runs[name + ", fast path"] = inference_runner(fast, sketch)
        rows[name] = rows[name + ", fast path"] = {"parameters": count_parameters(generator), "output": output}
    timings = time_interleaved(runs, repeats)
    reference_timing = timings[REFERENCE]
    return [{"name": name, **rows[name], "wall_ms": 1000 * timing.wall_s, "cpu_ms": 1000 * timing.cpu_s,
             "wall_ratio": timing.wall_s / reference_timing.wall_s, "cpu_ratio": timing.cpu_s / reference_timing.cpu_s,
             "runs": timing.runs} for name, timing in timings.items()]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=15, help="timed runs of each variant (median reported)")
    parser.add_argument("--threads", type=int, default=min(2, os.cpu_count() or 2))
    args = parser.parse_args(argv)
    if args.repeats < 1:
        parser.error("--repeats must be at least 1")
    torch.set_num_threads(args.threads)
    results = measure(args.repeats)
    print(f"{cpu_description()}, {args.threads} torch thread(s), torch {torch.__version__}, "
          f"median of {args.repeats} runs each, batch 1, interleaved")
    print("| generator | output (HxW) | parameters | wall ms | CPU ms | / unet_256 wall | / unet_256 CPU |")
    print("|---|---|---|---|---|---|---|")
    for row in results:
        height, width = row["output"]
        print(f"| {row['name']} | {height}x{width} | {row['parameters'] / 1e6:.1f}M | {row['wall_ms']:.0f} | "
              f"{row['cpu_ms']:.0f} | {row['wall_ratio']:.2f}x | {row['cpu_ratio']:.2f}x |")


if __name__ == "__main__":
    main()
