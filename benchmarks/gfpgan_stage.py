"""Benchmark the GFPGAN stage on CPU: the stock fp32 forward against the optimised one.

    nice -n 15 .venv/bin/python -m benchmarks.gfpgan_stage --repeats 5
    nice -n 15 .venv/bin/python -m benchmarks.gfpgan_stage --bf16 --compile   # + the rejected variants

Both run the same GFPGANv1Clean (v1.4 configuration, 512 px) on the same aligned face, in the
same process, interleaved, so background load hits them alike. Reported per face: wall-clock
median and CPU-seconds median (all threads; steadier than wall time on a busy machine), the
whole stage (align + network + paste back into the 2x canvas), and the fidelity of each variant
to the stock fp32 output (PSNR / SSIM over the 512x512 uint8 restoration).

Weights: the real GFPGANv1.4 when it is available ($SKETCH2FACE_GFPGAN_PATH, --checkpoint or
the cache); otherwise the same architecture with seeded random weights, for which the fidelity
numbers say little about real outputs (random filters amplify rounding differently).
Input: a face the project's generator (weights/) draws from examples/01_short_hair.png.

``measure(repeats=...) -> dict`` is importable (``from benchmarks.gfpgan_stage import measure``).
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from sketch2face.fastpath_gfpgan import FastGFPGAN
from sketch2face.restore import FaceRestorer, network, weights  # network imports the torchvision compat shim first
from sketch2face.restore.alignment import crop_to_template
from sketch2face.tensors import image_to_tensor, tensor_to_image

from sketch2face.training.machine import cpu_description

REPO_ROOT = Path(__file__).resolve().parent.parent

V14_CONFIG = {
    "out_size": 512,
    "num_style_feat": 512,
    "channel_multiplier": 2,
    "decoder_load_path": None,
    "fix_decoder": False,
    "num_mlp": 8,
    "input_is_latent": True,
    "different_w": True,
    "narrow": 1,
    "sft_half": True,
}
EXAMPLE_SKETCH = REPO_ROOT / "examples" / "01_short_hair.png"


def realistic_face() -> tuple[np.ndarray, str]:
    """A canvas face (uint8 320x256x3) from the project's generator, else a drawn stand-in."""
    try:
        from sketch2face import Sketch2Face, preprocess

        model = Sketch2Face.from_pretrained()
        return model.generate_canvas(preprocess.normalise(EXAMPLE_SKETCH).canvas), f"generator (weights/) on {EXAMPLE_SKETCH.name}"
    except Exception as error:  # noqa: BLE001  no trained weights yet: still benchmark something face-like
        import cv2

        face = np.full((320, 256, 3), (70, 110, 150), np.uint8)
        cv2.ellipse(face, (128, 180), (80, 105), 0, 0, 360, (200, 160, 140), -1)
        for x in (95, 160):
            cv2.ellipse(face, (x, 164), (14, 7), 0, 0, 360, (245, 245, 245), -1)
            cv2.circle(face, (x, 164), 5, (60, 40, 30), -1)
        cv2.ellipse(face, (128, 236), (26, 8), 0, 0, 180, (150, 70, 70), -1)
        face = cv2.GaussianBlur(face, (0, 0), 2.0)
        return face, f"a drawn stand-in face (generator unavailable: {error})"


def load_network(checkpoint: str | None = None) -> tuple[torch.nn.Module, str]:
    """The real GFPGANv1.4 if present locally (never downloads), else seeded random weights."""
    candidates = [checkpoint, os.environ.get(weights.PATH_ENV), weights.cache_dir() / weights.CHECKPOINT_NAME]
    for candidate in candidates:
        if candidate and Path(candidate).is_file():
            return network.load_gfpgan(Path(candidate)), f"real checkpoint {candidate}"
    torch.manual_seed(0)
    stock = network.build_gfpgan(V14_CONFIG).eval()
    with torch.no_grad():  # noise strengths are trained, non-zero values in the real model
        for name, parameter in stock.named_parameters():
            if name.endswith(".weight") and parameter.numel() == 1:
                parameter.fill_(0.1)
    return stock, "random weights (seed 0; real GFPGANv1.4.pth not available here)"


def _timed(function: Callable[[], Any]) -> tuple[float, float, Any]:
    wall, cpu = time.perf_counter(), time.process_time()
    result = function()
    return time.perf_counter() - wall, time.process_time() - cpu, result


def _fidelity(candidate: np.ndarray, reference: np.ndarray) -> tuple[float, float]:
    if np.array_equal(candidate, reference):
        return float("inf"), 1.0
    psnr = peak_signal_noise_ratio(reference, candidate, data_range=255)
    ssim = structural_similarity(reference, candidate, channel_axis=2, data_range=255)
    return float(psnr), float(ssim)


def measure(
    repeats: int = 5,
    checkpoint: str | None = None,
    threads: int | None = None,
    bf16: bool = False,
    compile_model: bool = False,
) -> dict[str, Any]:
    """Time stock vs optimised GFPGAN on one face; returns numbers and context as a dict."""
    load_before = os.getloadavg()[0]
    if threads:
        torch.set_num_threads(threads)
    face, face_source = realistic_face()
    stock, weights_source = load_network(checkpoint)
    fast = FastGFPGAN(stock).eval()
    image = image_to_tensor(crop_to_template(face))[None]

    variants: dict[str, Callable[[], torch.Tensor]] = {
        "stock fp32 (GFPGANv1Clean.forward, no_grad)": lambda: _stock(stock, image),
        "optimised fp32 (FastGFPGAN, inference_mode)": lambda: _inference(fast, image),
    }
    if bf16:
        variants["optimised + bf16 autocast"] = lambda: _inference(fast, image, bf16=True)
    compile_seconds = None
    if compile_model:
        import torch._inductor.config as inductor_config

        inductor_config.freezing = True
        compiled = torch.compile(fast)
        compile_seconds, _, _ = _timed(lambda: _inference(compiled, image))
        variants["optimised + torch.compile (inductor, freezing)"] = lambda: _inference(compiled, image)

    outputs, walls, cpus = {}, {name: [] for name in variants}, {name: [] for name in variants}
    for name, run in variants.items():  # warm-up: oneDNN primitive creation, allocator
        outputs[name] = tensor_to_image(run())
    for _ in range(repeats):
        for name, run in variants.items():  # interleaved: load spikes hit every variant
            wall, cpu, _ = _timed(run)
            walls[name].append(wall)
            cpus[name].append(cpu)

    reference = outputs[next(iter(variants))]
    rows = []
    for name in variants:
        psnr, ssim = _fidelity(outputs[name], reference)
        rows.append(
            {
                "variant": name,
                "wall_s": statistics.median(walls[name]),
                "cpu_s": statistics.median(cpus[name]),
                "psnr_db": psnr,
                "ssim": ssim,
            }
        )

    # The whole stage as the pipeline runs it: align, optimised network, paste into the 2x canvas.
    restorer = FaceRestorer.from_network(stock)
    restorer.restore(face)
    stage = [_timed(lambda: restorer.restore(face)) for _ in range(repeats)]
    stock_stage = FaceRestorer.from_network(stock, optimized=False).restore(face)
    stage_psnr, stage_ssim = _fidelity(stage[-1][2], stock_stage)

    return {
        "rows": rows,
        "stage_alignment": restorer.align(face)[1],  # "landmarks" (dlib installed, face found) or "fixed"
        "stage_wall_s": statistics.median(wall for wall, _, _ in stage),
        "stage_cpu_s": statistics.median(cpu for _, cpu, _ in stage),
        "stage_psnr_db": stage_psnr,
        "stage_ssim": stage_ssim,
        "speedup_wall": rows[0]["wall_s"] / rows[1]["wall_s"],
        "speedup_cpu": rows[0]["cpu_s"] / rows[1]["cpu_s"],
        "compile_s": compile_seconds,
        "repeats": repeats,
        "threads": torch.get_num_threads(),
        "weights": weights_source,
        "input": face_source,
        "cpu": cpu_description(),
        "load_average": (load_before, os.getloadavg()[0]),
        "torch": torch.__version__,
    }


def _stock(stock: torch.nn.Module, image: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():  # what GFPGANer.enhance does
        return network.stock_forward(stock, image)


def _inference(module: Callable, image: torch.Tensor, bf16: bool = False) -> torch.Tensor:
    with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
        return module(image).float()


def format_report(result: dict[str, Any]) -> str:
    lines = [
        f"GFPGAN stage, {result['cpu']}, torch {result['torch']}, {result['threads']} threads, "
        f"median of {result['repeats']}; 1-min load average before/after: "
        f"{result['load_average'][0]:.1f}/{result['load_average'][1]:.1f}",
        f"weights: {result['weights']}",
        f"input: {result['input']}",
        "",
        "| variant | wall s / face | CPU s / face | PSNR vs stock | SSIM vs stock |",
        "|---|---:|---:|---:|---:|",
    ]
    for index, row in enumerate(result["rows"]):
        fidelity = "reference | reference" if index == 0 else f"{row['psnr_db']:.1f} dB | {row['ssim']:.4f}"
        lines.append(f"| {row['variant']} | {row['wall_s']:.2f} | {row['cpu_s']:.2f} | {fidelity} |")
    lines.append(
        f"| whole stage, optimised ({result['stage_alignment']} alignment + network + paste back; vs the same with the stock network) "
        f"| {result['stage_wall_s']:.2f} | {result['stage_cpu_s']:.2f} | {result['stage_psnr_db']:.1f} dB | {result['stage_ssim']:.4f} |"
    )
    lines.append("")
    lines.append(f"speed-up of the network: {result['speedup_wall']:.2f}x wall, {result['speedup_cpu']:.2f}x CPU time")
    if result["compile_s"] is not None:
        lines.append(f"torch.compile: first call (compilation) took {result['compile_s']:.0f} s")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=None, help="torch intra-op threads (default: torch's choice)")
    parser.add_argument("--checkpoint", default=None, help="a GFPGANv1.4 .pth (default: $SKETCH2FACE_GFPGAN_PATH or the cache)")
    parser.add_argument("--bf16", action="store_true", help="also time bf16 autocast")
    parser.add_argument("--compile", action="store_true", help="also time torch.compile (minutes of compilation)")
    args = parser.parse_args(argv)
    print(format_report(measure(args.repeats, args.checkpoint, args.threads, bf16=args.bf16, compile_model=args.compile)))


if __name__ == "__main__":
    main()
