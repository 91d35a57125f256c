"""Load test: N concurrent gradio_client clients x M requests against the app.

    python -m benchmarks.load_test                      # launches `python app.py` on a free port
    python -m benchmarks.load_test --url http://127.0.0.1:7860/ --pid 1234
    python -m benchmarks.load_test --clients 8 --requests 25

Every answer is checked against the face the same server gave for the same sketch when it
was idle, so answers mixed up between concurrent requests (shared mutable state) show up as
mismatches, not only crashes. The server's RSS is sampled throughout (needs its pid: known
when this script launches it, or --pid). Prints a summary; exit status 1 on any failure.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")

import numpy as np  # noqa: E402
import psutil  # noqa: E402
from PIL import Image  # noqa: E402

REPO_ROOT = Path(__file__).resolve().parent.parent
EXAMPLES_DIR = REPO_ROOT / "examples"
MiB = 1024 * 1024


@dataclass
class LoadReport:
    clients: int
    requests_per_client: int
    latencies_s: list[float] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    mismatches: list[str] = field(default_factory=list)
    wall_s: float = 0.0
    rss_baseline: int | None = None  # server RSS (bytes) after warm-up, before the load
    rss_peak: int | None = None
    rss_final: int | None = None

    @property
    def answered(self) -> int:
        return len(self.latencies_s)

    @property
    def ok(self) -> bool:
        expected = self.clients * self.requests_per_client
        return not self.errors and not self.mismatches and self.answered == expected

    @property
    def throughput(self) -> float:
        return self.answered / self.wall_s if self.wall_s else 0.0

    def percentile(self, q: float) -> float:
        return float(np.percentile(self.latencies_s, q)) if self.latencies_s else float("nan")

    def summary(self) -> str:
        lines = [
            f"clients x requests      {self.clients} x {self.requests_per_client}",
            f"answered correctly      {self.answered - len(self.mismatches)} / {self.clients * self.requests_per_client}",
            f"errors / mismatches     {len(self.errors)} / {len(self.mismatches)}",
            f"wall time               {self.wall_s:.1f} s",
            f"throughput              {self.throughput:.2f} requests/s",
            f"latency median/p90/max  {self.percentile(50) * 1000:.0f} / {self.percentile(90) * 1000:.0f} / "
            f"{max(self.latencies_s, default=float('nan')) * 1000:.0f} ms",
        ]
        if self.rss_baseline is not None:
            lines.append(
                f"server RSS              baseline {self.rss_baseline / MiB:.0f} MiB, peak {self.rss_peak / MiB:.0f} MiB "
                f"(+{(self.rss_peak - self.rss_baseline) / MiB:.0f}), after {self.rss_final / MiB:.0f} MiB "
                f"(+{(self.rss_final - self.rss_baseline) / MiB:.0f})"
            )
        for message in (self.errors + self.mismatches)[:5]:
            lines.append(f"  ! {message}")
        return "\n".join(lines)


class RssSampler:
    """Samples a process's RSS in a background thread (peak over the run)."""

    def __init__(self, pid: int, interval_s: float = 0.02):
        self.process = psutil.Process(pid)
        self.interval_s = interval_s
        self.peak = self.current()
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def current(self) -> int:
        return self.process.memory_info().rss

    def _run(self) -> None:
        while not self._done.is_set():
            self.peak = max(self.peak, self.current())
            time.sleep(self.interval_s)

    def __enter__(self) -> "RssSampler":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._done.set()
        self._thread.join()
        self.peak = max(self.peak, self.current())


def example_sketches(count: int = 4) -> list[Path]:
    paths = sorted(EXAMPLES_DIR.glob("*.png"))[:count]
    if not paths:
        raise SystemExit(f"no example sketches in {EXAMPLES_DIR}")
    return paths


def _pixels(path: str) -> np.ndarray:
    with Image.open(path) as image:
        return np.asarray(image.convert("RGB"), dtype=np.int16)


def run_load(
    url: str,
    clients: int = 8,
    requests_per_client: int = 25,
    server_pid: int | None = None,
    sketches: list[Path] | None = None,
) -> LoadReport:
    """Fire clients x requests_per_client /generate calls, all clients at once."""
    from gradio_client import Client, handle_file

    sketches = sketches or example_sketches()
    report = LoadReport(clients, requests_per_client)
    # The reference answers, one request at a time (this also warms the server up).
    reference_client = Client(url, verbose=False)
    expected = {path: _pixels(reference_client.predict(handle_file(str(path)), False, api_name="/generate")[0]) for path in sketches}
    connected = [Client(url, verbose=False) for _ in range(clients)]
    lock = threading.Lock()
    start_line = threading.Barrier(clients)

    def one_client(index: int, client) -> None:
        start_line.wait()
        for number in range(requests_per_client):
            sketch = sketches[(index + number) % len(sketches)]
            started = time.perf_counter()
            try:
                result, _ = client.predict(handle_file(str(sketch)), False, api_name="/generate")
                elapsed = time.perf_counter() - started
                got = _pixels(result)
            except Exception as error:  # recorded (a broken download too), the load goes on
                with lock:
                    report.errors.append(f"client {index} request {number}: {type(error).__name__}: {error}")
                continue
            want = expected[sketch]
            with lock:
                report.latencies_s.append(elapsed)
                if got.shape != want.shape:
                    report.mismatches.append(f"client {index} request {number}: {sketch.name}: size {got.shape} != {want.shape}")
                elif np.abs(got - want).max() > 1:
                    report.mismatches.append(
                        f"client {index} request {number}: {sketch.name}: max diff {np.abs(got - want).max()}"
                    )

    sampler = RssSampler(server_pid) if server_pid else None
    if sampler:
        report.rss_baseline = sampler.current()
        sampler.__enter__()
    threads = [threading.Thread(target=one_client, args=(index, client)) for index, client in enumerate(connected)]
    started = time.perf_counter()
    try:
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    finally:
        report.wall_s = time.perf_counter() - started
        if sampler:
            sampler.__exit__()
            report.rss_peak = sampler.peak
            report.rss_final = sampler.current()
    return report


# --------------------------------------------------------------------------------------
# The app in its own process, and one queued event over plain HTTP
# --------------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def launch_app(timeout_s: float = 180.0, quiet: bool = False) -> tuple[subprocess.Popen, str]:
    """`python app.py` on a free 127.0.0.1 port; returns (process, url) once it answers.

    ``quiet``: the app's output goes to a temporary file, shown only if it fails to start, so
    it does not run through a benchmark's printed report."""
    import httpx

    port = free_port()
    env = dict(os.environ, GRADIO_SERVER_NAME="127.0.0.1", GRADIO_SERVER_PORT=str(port), HF_HUB_OFFLINE="1")
    log = tempfile.TemporaryFile("w+") if quiet else None
    process = subprocess.Popen([sys.executable, str(REPO_ROOT / "app.py")], cwd=REPO_ROOT, env=env,
                               stdout=log, stderr=subprocess.STDOUT if quiet else None)
    url = f"http://127.0.0.1:{port}/"

    def failure(reason: str) -> SystemExit:
        if log is None:
            return SystemExit(reason)
        log.seek(0)
        return SystemExit(f"{reason}; its output ended:\n{log.read()[-2000:]}")

    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise failure(f"app.py exited with status {process.returncode} before serving")
        try:
            if httpx.get(url + "config", timeout=2).status_code == 200:
                if log is not None:
                    log.close()  # the app keeps writing to its own handle
                return process, url
        except httpx.HTTPError:
            pass
        time.sleep(0.5)  # polling the start-up, bounded by the deadline
    process.terminate()
    raise failure(f"app.py did not answer on {url} within {timeout_s:.0f} s")


def queued_call(http, url: str, fn_index: int, data: list, session: str) -> list:
    """One event through Gradio's queue over plain HTTP, as the page makes it: join, then read
    the session's event stream until the event completes. Returns the event's output values;
    raises if the app reports a failure or the stream ends first."""
    http.post(
        url + "gradio_api/queue/join",
        json={"data": data, "fn_index": fn_index, "session_hash": session, "event_data": None, "trigger_id": None},
    ).raise_for_status()
    with http.stream("GET", url + f"gradio_api/queue/data?session_hash={session}") as events:
        for line in events.iter_lines():
            if not line.startswith("data:"):
                continue
            message = json.loads(line[5:])
            if message.get("msg") == "process_completed":
                if not message.get("success", True):
                    raise RuntimeError(f"the app failed: {message.get('output')}")
                return message["output"]["data"]
    raise RuntimeError("the event stream ended without a result")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", help="a running app; default: launch app.py here")
    parser.add_argument("--pid", type=int, help="the running app's process id, to sample its RSS")
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--requests", type=int, default=25, help="requests per client")
    args = parser.parse_args(argv)

    process = None
    url, pid = args.url, args.pid
    if url is None:
        process, url = launch_app()
        pid = process.pid
    try:
        report = run_load(url, args.clients, args.requests, server_pid=pid)
    finally:
        if process is not None:
            process.terminate()
            process.wait(timeout=30)
    print(report.summary())
    return 0 if report.ok else 1


if __name__ == "__main__":
    sys.exit(main())
