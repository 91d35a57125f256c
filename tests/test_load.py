"""Concurrent clients against the launched app, and the pipeline shared between threads.

The full 8 x 25 run with printed numbers is ``python scripts/load_test.py``; here 8 clients
send a few requests each (SKETCH2FACE_LOAD_REQUESTS overrides) so CI stays fast.
"""

from __future__ import annotations

import importlib.util
import os
import sys
import threading
from pathlib import Path

import numpy as np
import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent
MiB = 1024 * 1024
CLIENTS = 8
REQUESTS_PER_CLIENT = int(os.environ.get("SKETCH2FACE_LOAD_REQUESTS", "4"))


@pytest.fixture(scope="module")
def load_test():
    spec = importlib.util.spec_from_file_location("load_test", REPO_ROOT / "scripts" / "load_test.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up
    spec.loader.exec_module(module)
    return module


def test_eight_concurrent_clients_all_get_their_own_correct_face(app_url, load_test):
    # The app runs in this process (conftest), so this process's RSS is the server's.
    report = load_test.run_load(app_url, clients=CLIENTS, requests_per_client=REQUESTS_PER_CLIENT, server_pid=os.getpid())
    print("\n" + report.summary())
    assert not report.errors, report.errors[:3]
    assert not report.mismatches, report.mismatches[:3]
    assert report.answered == CLIENTS * REQUESTS_PER_CLIENT
    # Measured: +90 MiB peak for 8 x 25 with the server in its own process.
    assert report.rss_peak - report.rss_baseline < 512 * MiB, report.summary()


def test_pipeline_shared_by_threads_gives_each_caller_its_own_result(served_pipeline, load_test):
    """No per-request state in Sketch2Face: parallel calls (no app queue in between) agree
    with sequential ones."""
    sketches = load_test.example_sketches(4)
    expected = {path: np.asarray(served_pipeline(str(path)), dtype=np.int16) for path in sketches}
    failures: list[str] = []
    lock = threading.Lock()

    def worker(offset: int) -> None:
        for number in range(len(sketches)):
            path = sketches[(offset + number) % len(sketches)]
            try:
                got = np.asarray(served_pipeline(str(path)), dtype=np.int16)
                wrong = got.shape != expected[path].shape or np.abs(got - expected[path]).max() > 1
            except Exception as error:
                wrong = f"{type(error).__name__}: {error}"
            if wrong:
                with lock:
                    failures.append(f"thread {offset}, {path.name}: {wrong}")

    threads = [threading.Thread(target=worker, args=(offset,)) for offset in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not failures, failures
