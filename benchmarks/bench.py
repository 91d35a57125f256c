"""Benchmark: ``python -m benchmarks`` (from the repository root) prints a markdown table (docs/benchmark.md).

Measured, each a median over repeated runs, ratios within the same run:

1. generator latency at the served resolution (256x320 canvas, batch 1) for the served model
   (weights/ or $SKETCH2FACE_MODEL), plain eval, the fast path (sketch2face.fastpath) and the fast
   path shift-averaged as it serves a shaded sketch (2 passes) and a line drawing (4 passes),
   against a reference pix2pix ``unet_256`` (ngf=64, 8 downs, batch norm, dropout, fp32, eager,
   256x256, 3 channels in; built here in eval mode). Wall-clock and CPU seconds (all threads:
   steadier than wall time when something else is using the cores);
2. fast-path fidelity against the plain model (max |diff|, PSNR) on the example sketches;
3. the generator designs (benchmarks/generator_latency.py, random weights), plain and fast path,
   each as a ratio of the reference timed in the same interleaved run;
4. cold start: a fresh ``python`` that imports, loads the model and generates one face;
5. end-to-end gradio_client round trip to ``python app.py`` (no enhancement), sequential;
6. throughput and latency with 8 concurrent clients (benchmarks/load_test.py);
7. the app process's peak RSS over 5-6, and this process's after 1-2;
8. the live preview (benchmarks/live_update.py): the handler alone, one update over loopback,
   8 drawers at once;
9. the GFPGAN stage (benchmarks/gfpgan_stage.py), when present.

Options: ``--quick`` (fewer repeats), ``--threads N`` (torch threads here and in the cold-start
runs; app.py sets its own), ``--skip-app`` (only 1-4).
"""

from __future__ import annotations

import argparse
import datetime
import os
import resource
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")

import numpy as np  # noqa: E402
import torch  # noqa: E402
from skimage.metrics import peak_signal_noise_ratio  # noqa: E402
from torch import nn  # noqa: E402

from sketch2face import preprocess  # noqa: E402
from sketch2face.fastpath import LINE_DRAWING_SHIFTS, SHADED_SKETCH_SHIFTS, ShiftAveraged, optimise_for_inference  # noqa: E402
from sketch2face.networks import count_parameters  # noqa: E402
from sketch2face.pipeline import load_generator  # noqa: E402
from sketch2face.tensors import image_to_tensor, tensor_to_image  # noqa: E402

from . import live_update, load_test  # noqa: E402
from sketch2face.training.machine import cpu_description  # noqa: E402

REPO_ROOT = Path(__file__).resolve().parent.parent
EXAMPLES_DIR = REPO_ROOT / "examples"
MiB = 1024 * 1024

GOALS = {
    "generator_ratio": 0.25,  # served generator latency / reference unet_256
    "full_size_design_ratio": 1.0,  # each of generator_latency.FULL_SIZE_DESIGNS / reference unet_256
    "round_trip_ms": 150.0,
    "live_update_ms": 100.0,  # one live preview update over loopback, no GFPGAN
    "cold_start_s": 10.0,
}


# --------------------------------------------------------------------------------------
# The reference: pix2pix's unet_256 (Isola et al.; junyanz/pytorch-CycleGAN-and-pix2pix)
# --------------------------------------------------------------------------------------


class _Pix2PixSkipBlock(nn.Module):
    """One level of pix2pix's recursive U-Net: down, the inner levels, up, then concat."""

    def __init__(self, outer: int, inner: int, in_channels: int | None = None, submodule: nn.Module | None = None,
                 outermost: bool = False, innermost: bool = False, dropout: bool = False):
        super().__init__()
        self.outermost = outermost
        in_channels = in_channels or outer
        down_conv = nn.Conv2d(in_channels, inner, 4, stride=2, padding=1, bias=False)  # BatchNorm: no bias
        if outermost:
            up = [nn.ReLU(True), nn.ConvTranspose2d(inner * 2, outer, 4, stride=2, padding=1), nn.Tanh()]
            layers = [down_conv, submodule, *up]
        elif innermost:
            up = [nn.ReLU(True), nn.ConvTranspose2d(inner, outer, 4, stride=2, padding=1, bias=False), nn.BatchNorm2d(outer)]
            layers = [nn.LeakyReLU(0.2, True), down_conv, *up]
        else:
            down = [nn.LeakyReLU(0.2, True), down_conv, nn.BatchNorm2d(inner)]
            up = [nn.ReLU(True), nn.ConvTranspose2d(inner * 2, outer, 4, stride=2, padding=1, bias=False), nn.BatchNorm2d(outer)]
            layers = [*down, submodule, *up] + ([nn.Dropout(0.5)] if dropout else [])
        self.model = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x) if self.outermost else torch.cat([x, self.model(x)], 1)


def reference_unet256(in_channels: int = 3, out_channels: int = 3, ngf: int = 64) -> nn.Module:
    """pix2pix ``--netG unet_256 --norm batch`` with dropout: 54.4M parameters."""
    block = _Pix2PixSkipBlock(ngf * 8, ngf * 8, innermost=True)
    for _ in range(3):
        block = _Pix2PixSkipBlock(ngf * 8, ngf * 8, submodule=block, dropout=True)
    block = _Pix2PixSkipBlock(ngf * 4, ngf * 8, submodule=block)
    block = _Pix2PixSkipBlock(ngf * 2, ngf * 4, submodule=block)
    block = _Pix2PixSkipBlock(ngf, ngf * 2, submodule=block)
    return _Pix2PixSkipBlock(out_channels, ngf, in_channels=in_channels, submodule=block, outermost=True)


# --------------------------------------------------------------------------------------
# Timing
# --------------------------------------------------------------------------------------


@dataclass
class Timing:
    wall_s: float  # median
    cpu_s: float  # median process CPU time (all threads)
    runs: int


def time_interleaved(variants: dict[str, Callable[[], object]], repeats: int, warmup: int = 2) -> dict[str, Timing]:
    """Round-robin over the variants, so a burst of background load hits them all alike."""
    for run in variants.values():
        for _ in range(warmup):
            run()
    walls: dict[str, list[float]] = {name: [] for name in variants}
    cpus: dict[str, list[float]] = {name: [] for name in variants}
    for _ in range(repeats):
        for name, run in variants.items():
            wall, cpu = time.perf_counter(), time.process_time()
            run()
            cpus[name].append(time.process_time() - cpu)
            walls[name].append(time.perf_counter() - wall)
    return {name: Timing(statistics.median(walls[name]), statistics.median(cpus[name]), repeats) for name in variants}


def inference_runner(module: nn.Module, batch: torch.Tensor) -> Callable[[], object]:
    """One forward pass of ``module`` on ``batch``, for time_interleaved."""
    def run():
        with torch.inference_mode():
            return module(batch)

    return run


def example_canvases(count: int = 8) -> list[np.ndarray]:
    return [preprocess.normalise(path).canvas for path in sorted(EXAMPLES_DIR.glob("*.png"))[:count]]


def to_batch(canvas: np.ndarray) -> torch.Tensor:
    return image_to_tensor(canvas)[None]


# --------------------------------------------------------------------------------------
# The measurements
# --------------------------------------------------------------------------------------


def measure_generator(repeats: int) -> dict:
    torch.manual_seed(0)
    served = load_generator()
    fast = optimise_for_inference(served)
    reference = reference_unet256().eval()
    canvas = to_batch(example_canvases(1)[0])  # (1, 1, 320, 256)
    reference_input = torch.randn(1, 3, 256, 256)

    timings = time_interleaved(
        {
            "reference": inference_runner(reference, reference_input),
            "served": inference_runner(served, canvas),
            "fast": inference_runner(fast, canvas),
            "shaded_sketch": inference_runner(ShiftAveraged(fast, SHADED_SKETCH_SHIFTS), canvas),
            "line_drawing": inference_runner(ShiftAveraged(fast, LINE_DRAWING_SHIFTS), canvas),
        },
        repeats,
    )
    # Fidelity of the fast path on real inputs: every example sketch, as uint8 images.
    worst_diff, psnrs = 0.0, []
    with torch.inference_mode():
        for sketch in example_canvases():
            plain = served(to_batch(sketch))
            quick = fast(to_batch(sketch))
            worst_diff = max(worst_diff, float((plain - quick).abs().max()))
            plain_image, quick_image = tensor_to_image(plain), tensor_to_image(quick)
            same = np.array_equal(plain_image, quick_image)  # skimage divides by zero for identical images
            psnrs.append(float("inf") if same else peak_signal_noise_ratio(plain_image, quick_image, data_range=255))
    return {
        "timings": timings,
        "served_params": count_parameters(served),
        "reference_params": count_parameters(reference),
        "fast_max_abs_diff": worst_diff,
        "fast_min_psnr_db": min(psnrs),
    }


COLD_START_SCRIPT = """
import sys, time
started = float(sys.argv[1])
from sketch2face import Sketch2Face
model = Sketch2Face.from_pretrained()
face = model(sys.argv[2])
print(time.time() - started)
"""


def measure_cold_start(runs: int, threads: int) -> list[float]:
    """From spawning ``python`` to a generated face, in a fresh process each time."""
    example = str(sorted(EXAMPLES_DIR.glob("*.png"))[0])
    env = dict(os.environ, OMP_NUM_THREADS=str(threads), HF_HUB_OFFLINE="1")
    seconds = []
    for _ in range(runs):
        started = time.time()
        completed = subprocess.run(
            [sys.executable, "-c", COLD_START_SCRIPT, repr(started), example],
            cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=600,
        )
        if completed.returncode != 0:
            raise RuntimeError(f"cold-start run failed: {completed.stderr.strip().splitlines()[-1:]}")
        seconds.append(float(completed.stdout.strip().splitlines()[-1]))
    return seconds


def raw_http_round_trip(http, url: str, fn_index: int, sketch: Path) -> tuple[dict, bytes]:
    """The /generate call gradio_client makes, over one kept-alive httpx.Client: upload,
    queue/join, read the event stream to completion, download the result. Separates the
    server's share of the round trip from gradio_client's own overhead.

    Returns the result's file record (server path, url) and its bytes."""
    import uuid

    uploaded = http.post(url + "gradio_api/upload", files={"files": (sketch.name, sketch.read_bytes(), "image/png")})
    uploaded.raise_for_status()
    file_data = {"path": uploaded.json()[0], "orig_name": sketch.name, "meta": {"_type": "gradio.FileData"}}
    result_record = load_test.queued_call(http, url, fn_index, [file_data, False], uuid.uuid4().hex)[0]
    result = http.get(result_record["url"])
    result.raise_for_status()
    return result_record, result.content


def measure_app(round_trips: int, clients: int, requests_per_client: int, threads: int) -> dict:
    """Launch ``python app.py``; sequential round trips, then concurrent load; sample its RSS."""
    import httpx
    from gradio_client import Client, handle_file

    os.environ["OMP_NUM_THREADS"] = str(threads)  # inherited by the app process
    launched = time.time()
    process, url = load_test.launch_app(quiet=True)
    try:
        client = Client(url, verbose=False)
        example = str(sorted(EXAMPLES_DIR.glob("*.png"))[0])
        client.predict(handle_file(example), False, api_name="/generate")
        first_answer_s = time.time() - launched
        with load_test.RssSampler(process.pid) as sampler:
            latencies = []
            for _ in range(round_trips):
                started = time.perf_counter()
                client.predict(handle_file(example), False, api_name="/generate")
                latencies.append(time.perf_counter() - started)
            raw_latencies = []
            config = httpx.get(url + "config", timeout=30).json()
            fn_index = next(dependency["id"] for dependency in config["dependencies"] if dependency.get("api_name") == "generate")
            with httpx.Client(timeout=120) as http:
                raw_http_round_trip(http, url, fn_index, Path(example))  # connect, warm up
                for _ in range(round_trips):
                    started = time.perf_counter()
                    raw_http_round_trip(http, url, fn_index, Path(example))
                    raw_latencies.append(time.perf_counter() - started)
            report = load_test.run_load(url, clients, requests_per_client, server_pid=process.pid)
        return {
            "round_trip_s": latencies,
            "raw_round_trip_s": raw_latencies,
            "load": report,
            "app_peak_rss": max(sampler.peak, report.rss_peak or 0),
            "app_start_to_first_answer_s": first_answer_s,
        }
    finally:
        process.terminate()
        process.wait(timeout=30)


def measure_generator_designs(repeats: int) -> list[dict]:
    from . import generator_latency  # it imports this module: only once this one is loaded

    return generator_latency.measure(repeats)


def measure_gfpgan(repeats: int) -> dict:
    from . import gfpgan_stage  # imports GFPGAN and basicsr: only when this part runs

    return gfpgan_stage.measure(repeats=repeats)


BUSY_PERCENT = 20.0  # another process above this much of one core counts as competing


def competing_processes(sample_s: float = 1.0) -> list[str]:
    """Other processes busy on the CPU now (a training run, a test suite): they skew the timings.
    Sampled over ``sample_s``, since one process's CPU percent needs two readings."""
    import psutil

    others = [process for process in psutil.process_iter(["pid", "cmdline"]) if process.pid != os.getpid()]
    for process in others:
        try:
            process.cpu_percent(None)
        except psutil.Error:
            pass
    time.sleep(sample_s)
    found = []
    for process in others:
        try:
            percent = process.cpu_percent(None)
        except psutil.Error:
            continue  # it ended meanwhile
        if percent >= BUSY_PERCENT:
            found.append(f"pid {process.pid} {percent:.0f}% CPU: {' '.join(process.info['cmdline'] or [])[:90]}")
    return found


# --------------------------------------------------------------------------------------
# Report
# --------------------------------------------------------------------------------------


def _ms(seconds: float) -> str:
    return f"{seconds * 1000:.0f} ms"


def _verdict(value: float, goal: float) -> str:
    return "met" if value <= goal else f"missed ({value / goal:.1f}x the goal)"


def report(results: dict, args: argparse.Namespace) -> str:
    lines = [
        f"sketch2face benchmark, {datetime.date.today().isoformat()}, {cpu_description()}, torch {torch.__version__}, "
        f"{args.threads} torch thread(s)",
    ]
    for moment, busy in zip(("start", "end"), results["competing"]):
        lines.append(f"Other processes over {BUSY_PERCENT:.0f}% CPU at the {moment}: " + ("; ".join(busy) if busy else "none"))
    lines.append(f"1-minute load average: {results['load_average'][0]:.2f} at the start, {results['load_average'][1]:.2f} at the end")
    lines += ["", "| measurement | median | goal | verdict |", "|---|---|---|---|"]
    generator = results["generator"]
    timings = generator["timings"]
    ref, served, fast = timings["reference"], timings["served"], timings["fast"]
    lines.append(f"| reference pix2pix unet_256 ({generator['reference_params'] / 1e6:.1f}M params, 3x256x256, fp32 eager) | "
                 f"{_ms(ref.wall_s)} wall, {_ms(ref.cpu_s)} CPU | | |")
    rows = [("served generator, plain eval", served), ("served generator, fast path", fast)]
    for kind, shifts in (("shaded_sketch", SHADED_SKETCH_SHIFTS), ("line_drawing", LINE_DRAWING_SHIFTS)):
        if kind in timings:  # what serves: the mean over shifted copies, by the kind of drawing
            rows.append((f"served generator as it serves a {kind.replace('_', ' ')} ({len(shifts)} shifts)", timings[kind]))
    for name, timing in rows:
        ratio_wall = timing.wall_s / ref.wall_s
        ratio_cpu = timing.cpu_s / ref.cpu_s
        lines.append(
            f"| {name} ({generator['served_params'] / 1e6:.1f}M params, 1x320x256) | {_ms(timing.wall_s)} wall "
            f"({ratio_wall:.2f}x ref), {_ms(timing.cpu_s)} CPU ({ratio_cpu:.2f}x ref) | <= {GOALS['generator_ratio']}x ref | "
            f"{_verdict(ratio_wall, GOALS['generator_ratio'])} |"
        )
    lines.append(f"| fast path fidelity vs plain fp32 (8 example sketches) | max abs diff {generator['fast_max_abs_diff']:.1e} "
                 f"(of 2.0 range), min PSNR {generator['fast_min_psnr_db']:.1f} dB (uint8) | | |")
    from .generator_latency import FULL_SIZE_DESIGNS

    designs = results["designs"]
    reference_run = designs[0]
    lines.append(f"| generator designs (random weights, 1x320x256 in; ratios to the unet_256 of this run): "
                 f"{reference_run['name']} | {reference_run['wall_ms']:.0f} ms wall, {reference_run['cpu_ms']:.0f} ms CPU | | |")
    goal = GOALS["full_size_design_ratio"]
    for row in designs[1:]:
        has_goal = row["name"].startswith(FULL_SIZE_DESIGNS)
        lines.append(
            f"| design: {row['name']}, {row['parameters'] / 1e6:.1f}M params | {row['wall_ms']:.0f} ms wall "
            f"({row['wall_ratio']:.2f}x ref), {row['cpu_ms']:.0f} ms CPU ({row['cpu_ratio']:.2f}x ref) | "
            + (f"<= {goal}x ref | {_verdict(row['wall_ratio'], goal)} |" if has_goal else "| |")
        )
    cold = results["cold_start_s"]
    lines.append(f"| cold start: spawn python, import, load, generate one face ({len(cold)} runs) | {statistics.median(cold):.1f} s "
                 f"(min {min(cold):.1f}) | <= {GOALS['cold_start_s']:.0f} s | {_verdict(statistics.median(cold), GOALS['cold_start_s'])} |")
    app = results.get("app")
    if app:
        trips = app["round_trip_s"]
        lines.append(f"| gradio_client round trip, /generate, no enhancement ({len(trips)} sequential) | "
                     f"{_ms(statistics.median(trips))} (p90 {_ms(float(np.percentile(trips, 90)))}) | <= {GOALS['round_trip_ms']:.0f} ms | "
                     f"{_verdict(statistics.median(trips) * 1000, GOALS['round_trip_ms'])} |")
        raw = app["raw_round_trip_s"]
        lines.append(f"| the same call over one kept-alive HTTP connection (server's share; {len(raw)} sequential) | "
                     f"{_ms(statistics.median(raw))} (p90 {_ms(float(np.percentile(raw, 90)))}) | | |")
        load = app["load"]
        lines.append(f"| {load.clients} concurrent clients x {load.requests_per_client} requests | {load.throughput:.2f} req/s; "
                     f"latency median {_ms(load.percentile(50))}, p90 {_ms(load.percentile(90))}; "
                     f"{load.answered - len(load.mismatches)}/{load.clients * load.requests_per_client} correct, "
                     f"{len(load.errors)} errors | | |")
        lines.append(f"| app RSS under that load | peak {app['app_peak_rss'] / MiB:.0f} MiB; "
                     f"+{(load.rss_peak - load.rss_baseline) / MiB:.0f} MiB over the idle app, "
                     f"+{(load.rss_final - load.rss_baseline) / MiB:.0f} MiB after | | |")
        lines.append(f"| app start (`python app.py`, caches the examples) to first answer | {app['app_start_to_first_answer_s']:.1f} s | | |")
    lines.append(f"| this process's peak RSS (reference + served models) | {results['generator_rss'] / MiB:.0f} MiB | | |")
    live = results.get("live")
    if live:
        from .live_update import percentiles

        handler, one = percentiles(live["handler"]), percentiles(live["one_drawer"])
        lines.append(f"| live preview handler alone (Sketchpad preprocessing, normalise, generator, PNG; {len(live['handler'])} runs) | "
                     f"{_ms(handler[0])} (p90 {_ms(handler[1])}) | | |")
        lines.append(f"| one live update over loopback, no GFPGAN (3 canvas uploads, queue, face download; "
                     f"{len(live['one_drawer'])} sequential) | {_ms(one[0])} (p90 {_ms(one[1])}) | <= {GOALS['live_update_ms']:.0f} ms | "
                     f"{_verdict(one[0] * 1000, GOALS['live_update_ms'])} |")
        many = live["many"]
        updates = sum(many["counts"])
        waits = f"wait median {_ms(percentiles(many['waits'])[0])}, p90 {_ms(percentiles(many['waits'])[1])}" if many["waits"] else "no updates"
        lines.append(f"| {live['drawers']} drawers at once for {many['elapsed']:.0f} s (each sends its next drawing when its face arrives) | "
                     f"{updates / many['elapsed']:.1f} updates/s (per drawer {min(many['counts'])}-{max(many['counts'])}); "
                     f"{waits}; {len(many['errors'])} errors | | |")
    gfpgan = results.get("gfpgan")
    if gfpgan is None:
        pass  # --skip-app
    elif isinstance(gfpgan, str):
        lines.append(f"| GFPGAN stage | not measured ({gfpgan}) | | |")
    else:
        for row in gfpgan["rows"]:
            lines.append(f"| GFPGAN network: {row['variant']} | {_ms(row['wall_s'])} wall, {_ms(row['cpu_s'])} CPU | | |")
        lines.append(f"| GFPGAN whole stage (align, network, paste into 2x) | {_ms(gfpgan['stage_wall_s'])} wall, "
                     f"{_ms(gfpgan['stage_cpu_s'])} CPU; weights: {gfpgan['weights']} | | |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer repeats (a smoke test, not numbers to quote)")
    parser.add_argument(
        "--threads", type=int, default=min(2, os.cpu_count() or 2),
        help="torch threads here and in the cold-start runs (app.py always sets its own: 2)",
    )
    parser.add_argument("--skip-app", action="store_true", help="skip the app round trip, load and GFPGAN measurements")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    repeats = 5 if args.quick else 21

    load_at_start = os.getloadavg()[0]
    results: dict = {"competing": [competing_processes()]}
    print("generator latency ...", file=sys.stderr, flush=True)
    results["generator"] = measure_generator(repeats)
    results["generator_rss"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # before the other parts add models
    print("generator designs ...", file=sys.stderr, flush=True)
    results["designs"] = measure_generator_designs(3 if args.quick else 15)
    print("cold start ...", file=sys.stderr, flush=True)
    results["cold_start_s"] = measure_cold_start(2 if args.quick else 5, args.threads)
    if not args.skip_app:
        print("app round trip and load ...", file=sys.stderr, flush=True)
        results["app"] = measure_app(
            round_trips=5 if args.quick else 25, clients=8, requests_per_client=2 if args.quick else 25, threads=args.threads
        )
        print("live preview ...", file=sys.stderr, flush=True)
        results["live"] = live_update.measure(updates=10 if args.quick else 40, seconds=5.0 if args.quick else 30.0)
        print("GFPGAN stage ...", file=sys.stderr, flush=True)
        try:
            results["gfpgan"] = measure_gfpgan(2 if args.quick else 5)
        except Exception as error:  # noqa: BLE001  another component's benchmark: report, don't crash ours
            results["gfpgan"] = f"{type(error).__name__}: {error}"
    results["load_average"] = (load_at_start, os.getloadavg()[0])
    results["competing"].append(competing_processes())
    print(report(results, args))
    return 0


if __name__ == "__main__":
    sys.exit(main())
