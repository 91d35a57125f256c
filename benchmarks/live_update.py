"""The live preview: what one update costs the server, and how many 8 visitors drawing at once get.

    python -m benchmarks.live_update [--updates 40] [--drawers 8] [--seconds 30]

Starts ``python app.py`` on 127.0.0.1 (a free port) and talks to it over loopback exactly as
the page does for every stroke: the canvas's three PNGs (background, layer, composite) go to
the Sketchpad's ``accept_blobs`` server function, then the preview event joins the queue with
their id, and the face is downloaded when the event stream says it is done. No GFPGAN.

Prints, as medians and p90:
1. the handler alone (Sketchpad preprocessing + normalise + generator + PNG), in this process;
2. one update over loopback, one drawer at a time: the server's time per update (goal: median
   <= 100 ms, bench.GOALS);
3. 8 drawers at once, each sending its latest drawing as soon as its previous face arrives
   (what trigger_mode="always_last" does in the browser): updates per second for all, and
   the wait each drawer sees.
"""

from __future__ import annotations

import argparse
import io
import os
import statistics
import sys
import threading
import time
import uuid

import numpy as np
from PIL import Image, ImageDraw

from .load_test import launch_app, queued_call

CANVAS = (512, 640)


# -- what the canvas sends ---------------------------------------------------------------


def face_strokes() -> list[list[tuple[float, float]]]:
    """A face drawn stroke by stroke (head, brows, eyes, nose, mouth), canvas pixels."""
    cx, cy = CANVAS[0] / 2, CANVAS[1] / 2
    head = [(cx + 150 * np.cos(t), cy + 200 * np.sin(t)) for t in np.linspace(0, 2 * np.pi, 40)]
    strokes = [head[:14], head[13:27], head[26:]]
    for side in (-1, 1):
        strokes.append([(cx + side * 75, cy - 55), (cx + side * 25, cy - 60)])
        strokes.append([(cx + side * 50 + 18 * np.cos(t), cy - 30 + 8 * np.sin(t)) for t in np.linspace(0, 2 * np.pi, 12)])
    strokes.append([(cx, cy - 15), (cx - 12, cy + 40), (cx + 10, cy + 45)])
    strokes.append([(cx - 50, cy + 90), (cx, cy + 108), (cx + 50, cy + 90)])
    return strokes


def png(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def canvas_frames() -> list[dict[str, bytes]]:
    """One frame per stroke: the three PNGs the browser's canvas uploads after that stroke."""
    background = png(Image.new("RGBA", CANVAS, "white"))
    layer = Image.new("RGBA", CANVAS, (0, 0, 0, 0))
    pen = ImageDraw.Draw(layer)
    frames = []
    for stroke in face_strokes():
        pen.line(stroke, fill=(0, 0, 0, 255), width=4, joint="curve")
        composite = Image.alpha_composite(Image.new("RGBA", CANVAS, "white"), layer)
        frames.append({"background": background, "layer": png(layer), "composite": png(composite)})
    return frames


def canvas_value(frame: dict[str, bytes]) -> dict:
    """The same frame as the live handler receives it after Gradio's preprocessing."""
    arrays = {name: np.asarray(Image.open(io.BytesIO(data)).convert("RGBA")) for name, data in frame.items()}
    return {"background": arrays["background"], "layers": [arrays["layer"]], "composite": arrays["composite"]}


# -- the app -----------------------------------------------------------------------------


class LiveEndpoint:
    """The ids the page uses for the live preview: the Sketchpad's component and its change event."""

    def __init__(self, url: str):
        import httpx

        config = httpx.get(url + "config", timeout=30).json()
        self.url = url
        self.sketchpad = next(c["id"] for c in config["components"] if c.get("props", {}).get("elem_id") == "sketchpad")
        self.fn_index = next(d["id"] for d in config["dependencies"] if [self.sketchpad, "change"] in d["targets"])


def live_update(http, endpoint: LiveEndpoint, frame: dict[str, bytes], session: str) -> None:
    """One stroke's round trip, as the browser makes it; raises if the app answers with an error."""
    blob_id = uuid.uuid4().hex[:11]
    for kind, name, index in (("background", "background", "null"), ("layer", "layer", "0"), ("composite", "composite", "null")):
        fields = {"component_id": str(endpoint.sketchpad), "session_hash": session, "fn_name": "accept_blobs", "id": blob_id, "type": kind, "index": index}
        http.post(endpoint.url + "gradio_api/component_server/", data=fields, files={"file": (f"{name}.png", frame[name], "image/png")}).raise_for_status()
    payload = {"background": None, "layers": [], "composite": None, "id": blob_id}
    face, status = queued_call(http, endpoint.url, endpoint.fn_index, [payload], session)[:2]
    if not face:
        raise RuntimeError(f"no face: {status}")
    http.get(face["url"]).raise_for_status()  # the browser shows it


# -- measurements ------------------------------------------------------------------------


def percentiles(values: list[float]) -> tuple[float, float]:
    """Median and p90, as bench and load_test compute them."""
    return statistics.median(values), float(np.percentile(values, 90))


def measure_handler(frames: list[dict[str, bytes]], repeats: int) -> list[float]:
    """Gradio's Sketchpad preprocessing plus our live handler, in this process."""
    import gradio as gr
    from gradio.components.image_editor import EditorData
    from gradio.data_classes import FileData

    import app
    import torch
    from sketch2face.web_files import RESULTS_DIR

    threads_before = torch.get_num_threads()  # load_pipeline sets the app's count: the caller gets its own back
    handlers = app.Handlers(app.load_pipeline())
    with gr.Blocks():
        sketchpad = gr.Sketchpad(type="numpy", image_mode="RGBA")
    folder = RESULTS_DIR.parent / "sketch2face-bench"
    folder.mkdir(exist_ok=True)
    payloads = []
    for number, frame in enumerate(frames):
        paths = {}
        for name, data in frame.items():
            paths[name] = folder / f"{number}_{name}.png"
            paths[name].write_bytes(data)
        payloads.append(EditorData(background=FileData(path=str(paths["background"])), layers=[FileData(path=str(paths["layer"]))], composite=FileData(path=str(paths["composite"]))))
    handlers.live_drawing(sketchpad.preprocess(payloads[-1]))  # warm-up
    times = []
    try:
        for _ in range(repeats):
            for payload in payloads:
                started = time.perf_counter()
                face, _ = handlers.live_drawing(sketchpad.preprocess(payload))
                times.append(time.perf_counter() - started)
                os.unlink(face)
    finally:
        torch.set_num_threads(threads_before)
    return times


def measure_one_drawer(endpoint: LiveEndpoint, frames: list[dict[str, bytes]], updates: int) -> list[float]:
    import httpx

    times = []
    with httpx.Client(timeout=120) as http:
        session = uuid.uuid4().hex[:11]
        live_update(http, endpoint, frames[-1], session)  # connect, warm up
        for number in range(updates):
            started = time.perf_counter()
            live_update(http, endpoint, frames[number % len(frames)], session)
            times.append(time.perf_counter() - started)
    return times


def measure_many_drawers(endpoint: LiveEndpoint, frames: list[dict[str, bytes]], drawers: int, seconds: float) -> dict:
    import httpx

    waits: list[float] = []
    errors: list[str] = []
    counts = [0] * drawers
    lock = threading.Lock()
    start_line = threading.Barrier(drawers + 1)
    stop_at = [0.0]

    def drawer(index: int) -> None:
        with httpx.Client(timeout=120) as http:
            session = uuid.uuid4().hex[:11]
            start_line.wait()
            number = index
            while time.perf_counter() < stop_at[0]:
                started = time.perf_counter()
                try:
                    live_update(http, endpoint, frames[number % len(frames)], session)
                except Exception as error:  # recorded; the drawer goes on (e.g. "queue full")
                    with lock:
                        errors.append(f"drawer {index}: {type(error).__name__}: {str(error)[:200]}")
                else:
                    with lock:
                        waits.append(time.perf_counter() - started)
                        counts[index] += 1
                number += 1

    threads = [threading.Thread(target=drawer, args=(index,)) for index in range(drawers)]
    for thread in threads:
        thread.start()
    stop_at[0] = time.perf_counter() + seconds
    started = time.perf_counter()
    start_line.wait()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - started
    return {"waits": waits, "errors": errors, "counts": counts, "elapsed": elapsed}


def measure(updates: int = 40, drawers: int = 8, seconds: float = 30.0) -> dict:
    """The three measurements; the app runs in its own process (app.py) for 2 and 3."""
    import app

    frames = canvas_frames()
    load_before = os.getloadavg()[0]
    handler = measure_handler(frames, repeats=max(1, updates // len(frames)))
    process, url = launch_app(quiet=True)
    try:
        endpoint = LiveEndpoint(url)
        one = measure_one_drawer(endpoint, frames, updates)
        many = measure_many_drawers(endpoint, frames, drawers, seconds)
    finally:
        process.terminate()
        process.wait(timeout=30)
    return {"handler": handler, "one_drawer": one, "drawers": drawers, "many": many, "torch_threads": app.TORCH_THREADS,
            "load_before": load_before, "load_after": os.getloadavg()[0]}


def report(results: dict) -> str:
    many = results["many"]
    rows = [("handler alone: Sketchpad preprocessing + normalise + generator + PNG", results["handler"])]
    rows.append(("one live update over loopback (3 canvas uploads, queue, face download), one drawer", results["one_drawer"]))
    if many["waits"]:
        rows.append((f"the same, {results['drawers']} drawers at once: wait per update", many["waits"]))
    lines = [f"Live preview, no GFPGAN: {os.cpu_count()} CPUs, torch threads {results['torch_threads']}, "
             f"load average {results['load_before']:.1f} before, {results['load_after']:.1f} after",
             "| measurement | runs | p50 | p90 |", "|---|---|---|---|"]
    for label, values in rows:
        p50, p90 = percentiles(values)
        lines.append(f"| {label} | {len(values)} | {1000 * p50:.0f} ms | {1000 * p90:.0f} ms |")
    total = sum(many["counts"])
    lines.append(f"\n{results['drawers']} drawers for {many['elapsed']:.1f} s: {total} updates = "
                 f"{total / many['elapsed']:.1f} updates/s ({total / many['elapsed'] / results['drawers']:.2f} per drawer "
                 f"per second; fewest {min(many['counts'])}, most {max(many['counts'])}), {len(many['errors'])} errors")
    lines += ["   " + error for error in many["errors"][:5]]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--updates", type=int, default=40, help="sequential updates for the one-drawer measurement")
    parser.add_argument("--drawers", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=30.0, help="how long the drawers draw at once")
    args = parser.parse_args(argv)
    results = measure(args.updates, args.drawers, args.seconds)
    print(report(results))
    return 0 if not results["many"]["errors"] else 1


if __name__ == "__main__":
    sys.exit(main())
