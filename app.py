"""Sketch2Face on Hugging Face Spaces: draw or upload a face sketch, get a photorealistic face.

The page is a thin layer over ONE :class:`sketch2face.Sketch2Face` built at start-up.
Public API endpoints (see README):

- ``/generate`` (image file, enhance: bool) -> image. The upload reaches our own loader
  undecoded, so unreadable files and decompression bombs get our one-line message.
- ``/generate_drawing`` (sketchpad value, enhance: bool) -> image, for the Draw tab.

Run ``python app.py``; importing this module builds nothing until ``app.demo`` is used.
"""

from __future__ import annotations

import os

# Before gradio / huggingface_hub are imported: they read these at import time.
os.environ["GRADIO_ANALYTICS_ENABLED"] = "False"
os.environ["HF_HUB_DISABLE_TELEMETRY"] = "1"

import base64  # noqa: E402
import binascii  # noqa: E402
import logging  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

import gradio as gr  # noqa: E402
from PIL import Image  # noqa: E402

from sketch2face.errors import InputError, Sketch2FaceError  # noqa: E402

logger = logging.getLogger("sketch2face.app")

ROOT = Path(__file__).resolve().parent
EXAMPLES_DIR = ROOT / "examples"

# Limits for a free CPU Space (2 vCPU, 16 GB). Why these numbers: README "Limits".
MAX_FILE_SIZE = "10mb"  # a phone photo of a sketch is 2-5 MB; the decoder refuses > 40 MP anyway
MAX_FILE_BYTES = 10 * 1024 * 1024
QUEUE_MAX_SIZE = 16  # beyond this a visitor gets "queue full" instead of a minutes-long wait
CONCURRENCY_LIMIT = 1  # one generation at a time: torch already uses both cores for one
TORCH_THREADS = 2

TITLE = "Sketch2Face"
INSTRUCTIONS = """
Draw a face in the **Draw** tab (black pen; the toolbar on the left has pen sizes and an eraser),
or upload a photo or scan of a pencil/pen sketch in the **Upload** tab, then press **Generate**.
Front-facing faces with a head outline, eyes, nose and mouth work best. Light lines on a dark
background are inverted automatically. **Restore face with GFPGAN** sharpens the result (slower;
the first use downloads the restoration model).
"""


def configure_torch() -> None:
    """A CPU Space has 2 cores: more threads than that only adds contention."""
    import torch

    torch.set_num_threads(min(TORCH_THREADS, os.cpu_count() or TORCH_THREADS))


def load_pipeline():
    """The pipeline the Space serves: $SKETCH2FACE_MODEL (a Hub repo id or folder), else weights/."""
    from sketch2face import Sketch2Face

    configure_torch()
    return Sketch2Face.from_pretrained()


# --------------------------------------------------------------------------------------
# Inputs as they arrive from Gradio -> something sketch2face.preprocess can load
# --------------------------------------------------------------------------------------

CANVAS_SIZE = (512, 640)  # the Sketchpad: portrait, the model's 4:5 framing at 2x


def blank_canvas() -> dict:
    """White paper as the Sketchpad's background: with it the pen is active on page load."""
    return {"background": Image.new("RGB", CANVAS_SIZE, "white"), "layers": [], "composite": None}


NO_IMAGE_MESSAGE = "Draw a face first (or upload a sketch): no image was given."


def upload_source(value: Any) -> Any:
    """The /generate input, passed through unprocessed (``preprocess=False``).

    Gradio hands over its file record ({"path", "url", ...}) without opening the file, so
    our loader is the only decoder. A plain path (cached examples) is accepted too.
    """
    if value is None:
        raise InputError(NO_IMAGE_MESSAGE)
    if isinstance(value, (str, os.PathLike)):
        return value
    if isinstance(value, dict):
        if value.get("path"):
            return value["path"]
        url = value.get("url") or ""
        if url.startswith("data:"):
            return _decode_data_url(url)
    raise InputError(NO_IMAGE_MESSAGE)


def _decode_data_url(url: str) -> bytes:
    header, _, data = url.partition(",")
    if len(data) * 3 // 4 > MAX_FILE_BYTES:  # same limit as uploads, before decoding
        raise InputError(f"The image is larger than {MAX_FILE_SIZE}.")
    if not header.endswith(";base64"):
        raise InputError("The image data URL is not base64 encoded.")
    try:
        return base64.b64decode(data, validate=True)
    except (binascii.Error, ValueError):
        raise InputError("The image data URL is not valid base64.") from None


def drawing_source(value: Any) -> Any:
    """The Sketchpad value (background, layers, composite); the loader flattens it onto white."""
    if value is None or (isinstance(value, dict) and not any(value.get(key) is not None for key in ("composite", "background")) and not value.get("layers")):
        raise InputError("Draw a face first: the canvas is empty.")
    return value


# --------------------------------------------------------------------------------------
# The page
# --------------------------------------------------------------------------------------


def example_paths() -> list[str]:
    return sorted(str(path) for path in EXAMPLES_DIR.glob("*.png"))


RESULTS_DIR = Path(tempfile.gettempdir()) / "sketch2face-results"
RESULT_LIFETIME_S = 600  # Gradio copies a result into its cache as soon as the handler returns
PRUNE_EVERY_S = 60  # a scan of the folder per request would cost more as the load grows
_next_prune = 0.0


def save_result(image: Image.Image) -> str:
    """Write the face to a new PNG file and return its path.

    Returning a path, not a PIL image, matters under load: Gradio caches a PIL result under a
    hash of its bytes and rewrites that file in place, so two visitors with the same sketch
    could download a truncated file. A path is copied and renamed into the cache instead.
    """
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    handle, path = tempfile.mkstemp(suffix=".png", dir=RESULTS_DIR)
    with os.fdopen(handle, "wb") as file:
        image.save(file, format="PNG", compress_level=1)
    _prune_old_results()
    return path


def _prune_old_results() -> None:
    global _next_prune
    if time.monotonic() < _next_prune:
        return
    _next_prune = time.monotonic() + PRUNE_EVERY_S
    deadline = time.time() - RESULT_LIFETIME_S
    for old in RESULTS_DIR.glob("*.png"):
        try:
            if old.stat().st_mtime < deadline:
                old.unlink()
        except FileNotFoundError:  # another request pruned it first
            pass


def make_generate_functions(pipeline):
    """Event handlers bound to one pipeline; every Sketch2FaceError becomes a gr.Error."""

    def run(to_source, value: Any, enhance: bool):
        try:
            result = pipeline.generate(to_source(value), enhance=bool(enhance))
        except Sketch2FaceError as error:
            raise gr.Error(str(error), print_exception=False) from None
        except Exception:
            # A bug, not the visitor's fault: log it, show one calm line (no traceback leak).
            logger.exception("generation failed")
            raise gr.Error("Something went wrong while generating the face. Please try again.") from None
        for note in result.notes:
            if note.startswith("Face restoration skipped"):
                gr.Warning(note)
            else:
                gr.Info(note)
        return save_result(result.image)

    def generate(image: Any, enhance: bool):
        return run(upload_source, image, enhance)

    def generate_drawing(drawing: Any, enhance: bool):
        return run(drawing_source, drawing, enhance)

    return generate, generate_drawing


def build_demo(pipeline) -> gr.Blocks:
    """The whole page around one pipeline (tests pass their own)."""
    generate, generate_drawing = make_generate_functions(pipeline)
    with gr.Blocks(title=TITLE) as demo:
        gr.Markdown(f"# {TITLE}\nTurn a face sketch into a photorealistic face (pix2pix, optionally restored with GFPGAN).")
        gr.Markdown(INSTRUCTIONS)
        with gr.Row(equal_height=False):
            with gr.Column():
                with gr.Tabs():
                    with gr.Tab("Draw", id="draw"):
                        drawing = gr.Sketchpad(
                            label="Draw a face",
                            type="numpy",
                            image_mode="RGBA",
                            value=blank_canvas(),
                            canvas_size=CANVAS_SIZE,
                            fixed_canvas=True,
                            height=640,
                            brush=gr.Brush(colors=["#000000"], color_mode="fixed", default_size=4),
                            eraser=gr.Eraser(default_size=16),
                            layers=False,
                            elem_id="sketchpad",
                        )
                        draw_button = gr.Button("Generate", variant="primary", elem_id="generate-drawing")
                    with gr.Tab("Upload", id="upload"):
                        upload = gr.Image(
                            label="Sketch (photo or scan)",
                            type="filepath",
                            image_mode=None,
                            sources=["upload", "clipboard"],
                            format="png",
                            elem_id="upload",
                        )
                        upload_button = gr.Button("Generate", variant="primary", elem_id="generate-upload")
                enhance = gr.Checkbox(label="Restore face with GFPGAN", value=False, elem_id="enhance")
            with gr.Column():
                output = gr.Image(
                    label="Generated face",
                    type="pil",
                    format="png",  # lossless download (Gradio's default is webp)
                    interactive=False,
                    buttons=["download", "fullscreen"],
                    elem_id="output",
                )

        shared = dict(
            outputs=output,
            concurrency_limit=CONCURRENCY_LIMIT,
            concurrency_id="generate",  # both buttons share the one generation slot
        )
        # preprocess=False: Gradio must not open the upload itself (its errors are opaque).
        upload_button.click(generate, [upload, enhance], api_name="generate", preprocess=False, **shared)
        draw_button.click(generate_drawing, [drawing, enhance], api_name="generate_drawing", **shared)

        paths = example_paths()
        if paths:
            gr.Examples(
                examples=[[path] for path in paths],
                inputs=[upload],  # one input: shown as a row of thumbnails
                outputs=output,
                fn=lambda image: generate(image, False),
                cache_examples=True,
                cache_mode="eager",
                label="Examples: click one to see its result (cached), then Generate to run it yourself",
                examples_per_page=12,
            )
    demo.queue(max_size=QUEUE_MAX_SIZE, default_concurrency_limit=CONCURRENCY_LIMIT)
    return demo


def launch_options() -> dict[str, Any]:
    """Options for demo.launch() shared by the Space and the tests."""
    return dict(max_file_size=MAX_FILE_SIZE, share=False, show_error=False, allowed_paths=[str(EXAMPLES_DIR)])


def main() -> int:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)  # one line per request otherwise
    try:
        pipeline = load_pipeline()
    except Sketch2FaceError as error:
        # One line an operator can act on (e.g. offline with SKETCH2FACE_MODEL=user/repo).
        print(f"error: {error}", file=sys.stderr)
        return 1
    # Stale cached examples would show a previous model's faces: recompute at start-up (~2 s).
    os.environ.setdefault("GRADIO_RESET_EXAMPLES_CACHE", "True")
    build_demo(pipeline).launch(**launch_options())
    return 0


_demo = None


def __getattr__(name: str):
    # `app.demo` (what Gradio tooling looks for) is built on first use, not on import.
    global _demo
    if name == "demo":
        if _demo is None:
            _demo = build_demo(load_pipeline())
        return _demo
    raise AttributeError(name)


if __name__ == "__main__":
    sys.exit(main())
