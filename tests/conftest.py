"""Shared fixtures: a tiny random model, and the real app served on 127.0.0.1.

``app_url`` launches exactly what the Space serves (``app.build_demo`` around
``Sketch2Face.from_pretrained()``, i.e. $SKETCH2FACE_MODEL or the bundled weights/) in this
process on a free port, once per session.
"""

from __future__ import annotations

import os

# Before gradio / gradio_client / huggingface_hub are imported anywhere: no telemetry, no Hub.
os.environ["GRADIO_ANALYTICS_ENABLED"] = "False"
os.environ["HF_HUB_DISABLE_TELEMETRY"] = "1"
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("OMP_NUM_THREADS", "2")

import socket  # noqa: E402
import sys  # noqa: E402
from pathlib import Path  # noqa: E402

import pytest  # noqa: E402

REPO_ROOT = Path(__file__).resolve().parent.parent
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory) -> Path:
    """A randomly initialised, very small generator saved like a real one (safetensors)."""
    import torch

    from sketch2face.networks import UNetGenerator

    torch.manual_seed(0)
    directory = tmp_path_factory.mktemp("tiny-model")
    UNetGenerator(ngf=8).save_pretrained(directory)
    return directory


@pytest.fixture(scope="session")
def tiny_pipeline(tiny_model_dir):
    from sketch2face import Sketch2Face

    return Sketch2Face.from_pretrained(tiny_model_dir)


@pytest.fixture(scope="session")
def served_pipeline():
    """The pipeline the Space serves (default weights/ unless $SKETCH2FACE_MODEL is set)."""
    from sketch2face import ModelLoadError, Sketch2Face

    try:
        return Sketch2Face.from_pretrained()
    except ModelLoadError as error:
        pytest.fail(f"The app's model could not be loaded: {error}", pytrace=False)


@pytest.fixture(scope="session")
def app_url(served_pipeline, tmp_path_factory):
    """URL (http://127.0.0.1:PORT/) of the real app, launched in this process."""
    import app

    # Cached example outputs go to a fresh folder: never a previous run's (or model's) faces.
    os.environ["GRADIO_EXAMPLES_CACHE"] = str(tmp_path_factory.mktemp("gradio-examples-cache"))
    demo = app.build_demo(served_pipeline)
    options = app.launch_options()
    options.update(server_name="127.0.0.1", server_port=free_port(), prevent_thread_lock=True, quiet=True)
    demo.launch(**options)
    try:
        yield demo.local_url
    finally:
        demo.close()


@pytest.fixture(scope="session")
def app_client(app_url):
    """A gradio_client connected to the served app."""
    from gradio_client import Client

    return Client(app_url, verbose=False)


@pytest.fixture
def hub_without_files(monkeypatch) -> list[tuple[str, str | None, str]]:
    """The Hub answers 404 for every file: the (repo, subfolder, file) asked for are recorded."""
    import httpx2
    import huggingface_hub
    from huggingface_hub.errors import RemoteEntryNotFoundError

    asked: list[tuple[str, str | None, str]] = []

    def no_such_file(repo_id, filename, subfolder=None, **_):
        asked.append((repo_id, subfolder, filename))
        request = httpx2.Request("GET", f"https://huggingface.co/{repo_id}/resolve/main/{subfolder}/{filename}")
        raise RemoteEntryNotFoundError("404 Client Error: entry not found", response=httpx2.Response(404, request=request))

    monkeypatch.setattr(huggingface_hub, "hf_hub_download", no_such_file)
    return asked
