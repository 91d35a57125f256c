"""Sketch2Face on Hugging Face Spaces: draw or upload a face sketch, get a photorealistic face.

The page is a thin layer over ONE :class:`sketch2face.Sketch2Face` built at start-up.

- **Draw** tab: the face follows the drawing (a live preview on every stroke, no button).
- **Upload** tab: an upload is checked and turned into a face as soon as it arrives; a colour
  photo is turned into a pencil sketch first, with a notice.
- **Generate** (either tab) runs what the tab shows, with GFPGAN when the box is ticked.
- **Examples** open in the Upload tab next to their (cached) faces.
- A status line under each face says what it shows; nothing covers the result.

Public API endpoints (see README), also the tools of the MCP server:

- ``/generate`` (sketch: image file, enhance: bool) -> (face: PNG file, status: dict). The
  upload reaches our own loader undecoded, so unreadable files and decompression bombs get
  our one-line message.
- ``/generate_drawing`` (drawing: sketchpad value, enhance: bool) -> (face, status).

``status`` is ``{"restoration": {"requested", "applied", "reason"}, "notes": [...]}``; bad
input raises an error with a one-line message. The page's own events are private: they never
raise, they explain the problem in the status line instead.

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
from dataclasses import dataclass  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any, Callable  # noqa: E402

import gradio as gr  # noqa: E402
import numpy as np  # noqa: E402
from PIL import Image  # noqa: E402

from sketch2face.errors import InputError, Sketch2FaceError  # noqa: E402
from sketch2face.photo_to_sketch import is_readable_image, sketch_if_photo  # noqa: E402
from sketch2face.web_files import ExpiringBlobStorage, save_result  # noqa: E402

logger = logging.getLogger("sketch2face.app")

ROOT = Path(__file__).resolve().parent
EXAMPLES_DIR = ROOT / "examples"

# Limits for a free CPU Space (2 vCPU, 16 GB). Why these numbers: README "Limits".
MAX_FILE_SIZE = "10mb"  # a phone photo of a sketch is 2-5 MB; the decoder refuses > 40 MP anyway
MAX_FILE_BYTES = 10 * 1024 * 1024
QUEUE_MAX_SIZE = 16  # beyond this a visitor gets "queue full" instead of a minutes-long wait
CONCURRENCY_LIMIT = 1  # one generation at a time: torch already uses both cores for one
TORCH_THREADS = 2
# Every event that runs the model shares ONE slot, previews included, so a preview waits for a
# GFPGAN run instead of competing with it for the two cores: with its 2 threads on a busy core
# the generator took 2.6x as long as with 1 thread (measured on the 2-core build machine).
GENERATION_SLOT = "generate"

TITLE = "Sketch2Face"
INTRO = """
# Sketch2Face
Draw a face and watch it become a photo, or upload a photo or scan of a pencil/pen sketch.
Front-facing faces with a head outline, eyes, nose and mouth work best.
"""

DRAW_PROMPT = "Draw a face on the canvas (black pen; the toolbar has pen sizes and an eraser): the face appears here as you draw."
UPLOAD_PROMPT = "Upload a photo or scan of a face sketch, or click an example below: its face appears here."
LIVE_NOTE = "Live preview, half size and without GFPGAN. **Generate** makes the full-size face; tick **Restore face with GFPGAN** too for sharper eyes, skin and hair."
PLAIN_NOTE = "Generated without GFPGAN. Tick **Restore face with GFPGAN** and press **Generate** for sharper eyes, skin and hair."
RESTORED_NOTE = "Restored with GFPGAN."
FAILURE_MESSAGE = "Something went wrong while generating the face. Please try again."


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
    """White paper as the Sketchpad's background (with it the pen is active on page load) and
    an empty layer to draw on. Gradio's canvas ignores its first change event; loading the
    layer is that first change, so the visitor's first stroke already updates the face."""
    return {
        "background": Image.new("RGB", CANVAS_SIZE, "white"),
        "layers": [Image.new("RGBA", CANVAS_SIZE, (0, 0, 0, 0))],
        "composite": None,
    }


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


def is_blank_canvas(value: Any) -> bool:
    """An untouched or cleared Sketchpad: no pixel is darker than paper (the starting state, not an error)."""
    if value is None:
        return True
    if not isinstance(value, dict):
        return False
    images = [value.get("composite")] if value.get("composite") is not None else [value.get("background"), *(value.get("layers") or [])]
    for image in images:
        if image is None:
            continue
        if not isinstance(image, np.ndarray):
            return False  # a file or PIL image: let the loader judge it
        if image.ndim == 3 and image.shape[2] == 4:
            if np.any((image[..., :3].min(axis=2) < 200) & (image[..., 3] > 0)):
                return False
        elif image.min() < 200:
            return False
    return True


def prepare_upload(value: Any) -> tuple[Any, list[str]]:
    """What the pipeline should see for an upload (a colour photo is sketched first), and notes on what was done to it."""
    return sketch_if_photo(upload_source(value))


# --------------------------------------------------------------------------------------
# Results: the API's status record, the page's status line (the PNG file: web_files)
# --------------------------------------------------------------------------------------


def status_record(result) -> dict[str, Any]:
    """The API's second output: did GFPGAN run (and if not, why), and what was fixed in the input."""
    return {"restoration": result.restoration.as_dict(), "notes": list(result.notes)}


def status_line(result, live: bool = False) -> str:
    """The page's status line (Markdown) for a generated face."""
    restoration = result.restoration
    if restoration.applied:
        lines = [RESTORED_NOTE]
    elif restoration.requested:
        lines = [f"⚠️ **GFPGAN was skipped**, so this face is not restored: {restoration.reason}"]
    else:
        lines = [LIVE_NOTE if live else PLAIN_NOTE]
    # The pipeline's notes repeat the skip reason for CLI users; the line above already says it.
    lines += [f"ℹ️ {note}" for note in result.notes if not (restoration.reason and restoration.reason in note)]
    return "\n\n".join(lines)


def error_line(message: str) -> str:
    return f"⚠️ {message}"


@dataclass(frozen=True)
class Handlers:
    """Event handlers bound to one pipeline.

    The API functions raise gr.Error with our one-line message; the page's handlers never
    raise: they return (face or None, status line) so a problem is explained where the face
    would be, without a toast over the result or an "Error" badge left behind.
    """

    pipeline: Any

    def run(self, prepare: Callable[[Any], tuple[Any, list[str]]], value: Any, enhance: bool, full_size: bool = True):
        source, notes = prepare(value)
        result = self.pipeline.generate(source, enhance=bool(enhance), full_size=full_size)
        result.notes[:0] = notes
        return save_result(result.image), result

    def api(self, prepare: Callable[[Any], tuple[Any, list[str]]], value: Any, enhance: bool) -> tuple[str, dict]:
        try:
            face, result = self.run(prepare, value, enhance)
        except Sketch2FaceError as error:
            raise gr.Error(str(error), print_exception=False) from None
        except Exception:
            # A bug, not the caller's fault: log it, answer one calm line (no traceback leak).
            logger.exception("generation failed")
            raise gr.Error(FAILURE_MESSAGE) from None
        return face, status_record(result)

    def page(self, prepare: Callable[[Any], tuple[Any, list[str]]], value: Any, enhance: bool, live: bool = False) -> tuple[str | None, str]:
        try:
            # The live preview stays at the canvas's resolution: a face half the size, quicker per stroke.
            face, result = self.run(prepare, value, enhance, full_size=not live)
        except Sketch2FaceError as error:
            return None, error_line(str(error))
        except Exception:
            logger.exception("generation failed")
            return None, error_line(FAILURE_MESSAGE)
        return face, status_line(result, live=live)

    # -- the page ----------------------------------------------------------------------
    def live_drawing(self, drawing: Any) -> tuple[str | None, str]:
        if is_blank_canvas(drawing):
            return None, DRAW_PROMPT
        return self.page(_as_drawing, drawing, enhance=False, live=True)

    def generate_drawing_on_page(self, drawing: Any, enhance: bool) -> tuple[str | None, str]:
        if is_blank_canvas(drawing):
            return None, error_line("Draw a face first: the canvas is empty.")
        return self.page(_as_drawing, drawing, enhance)

    def preview_upload(self, upload: Any) -> tuple[Any, str | None, str]:
        """(the upload box's new value, face, status line): a file that is not a readable image
        is taken out of the box (the browser could only show it as a broken image)."""
        if upload is None:
            return gr.update(), None, UPLOAD_PROMPT
        face, line = self.page(prepare_upload, upload, enhance=False)
        unreadable = face is None and not is_readable_image(upload_source(upload))
        return (None if unreadable else gr.update()), face, line

    def generate_upload_on_page(self, upload: Any, enhance: bool) -> tuple[str | None, str]:
        return self.page(prepare_upload, upload, enhance)

    def example_face(self, example: Any) -> tuple[str | None, str]:
        face, line = self.page(prepare_upload, example, enhance=False)
        name = Path(upload_source(example)).stem
        return face, f"Example **{name}** and its face (computed when the app started). {line}"


def _as_drawing(value: Any) -> tuple[Any, list[str]]:
    return drawing_source(value), []


def make_api_functions(handlers: Handlers) -> tuple[Callable, Callable]:
    """The public endpoints. Their names become the MCP tool names, their docstrings the API
    page's and the MCP tools' descriptions (Gradio reads the Args/Returns sections)."""

    def sketch_to_face(sketch: Any, enhance: bool = False) -> tuple[str, dict]:
        """Turn a face sketch (a drawing, scan or photo of a pencil/pen sketch) into a photorealistic face.

        Light lines on a dark background are inverted, faint pencil is levelled and marker-thick
        strokes thinned; a colour photo is turned into a pencil sketch first. The face keeps the
        sketch's aspect ratio and position.

        Args:
            sketch: The sketch image (PNG, JPEG, WebP, GIF or BMP; at most 10 MB and 40 megapixels). A front-facing face with head outline, eyes, nose and mouth works best.
            enhance: Restore the face with GFPGAN v1.4: sharper eyes, skin and hair, a few seconds slower. If it can't run (e.g. offline without the weights), the unrestored face is returned and status says why.

        Returns:
            face: the generated face (PNG)
            status: {"restoration": {"requested", "applied", "reason"}, "notes": [...]}: whether GFPGAN ran and if not why, and what was fixed in the input
        """
        return handlers.api(prepare_upload, sketch, enhance)

    def drawing_to_face(drawing: Any, enhance: bool = False) -> tuple[str, dict]:
        """Turn a drawing made on the page's canvas into a photorealistic face.

        For image files, sketch_to_face (/generate) is simpler: it takes the file itself.

        Args:
            drawing: The canvas value {"background": image or None, "layers": [images], "composite": image}: the composite (or else the background with the layers on top) is the drawing; transparent pixels count as white paper.
            enhance: Restore the face with GFPGAN v1.4: sharper eyes, skin and hair, a few seconds slower. If it can't run (e.g. offline without the weights), the unrestored face is returned and status says why.

        Returns:
            face: the generated face (PNG)
            status: {"restoration": {"requested", "applied", "reason"}, "notes": [...]}: whether GFPGAN ran and if not why, and what was fixed in the input
        """
        return handlers.api(_as_drawing, drawing, enhance)

    return sketch_to_face, drawing_to_face


def parameter_descriptions(function: Callable) -> dict[str, str]:
    """The Args and Returns entries of an API function's docstring, by name: the API page's
    descriptions come from the same text as the MCP tool's."""
    described = {}
    section = None
    for line in (function.__doc__ or "").splitlines():
        line = line.strip()
        if line in ("Args:", "Returns:"):
            section = line
        elif section and ":" in line:
            name, _, text = line.partition(":")
            described[name.strip()] = text.strip()
    return described


# --------------------------------------------------------------------------------------
# The page
# --------------------------------------------------------------------------------------


def example_paths() -> list[str]:
    return sorted(str(path) for path in EXAMPLES_DIR.glob("*.png"))


API_EXAMPLE = "01_short_hair.png"


def api_example_location(name: str = API_EXAMPLE) -> str:
    """Where a caller finds one of our examples: on a Space its public URL, else the path in a clone."""
    space = os.environ.get("SPACE_ID")
    if space:
        return f"https://huggingface.co/spaces/{space}/resolve/main/examples/{name}"
    return f"examples/{name}"


def document_for_api(component: gr.components.Component, description: str, example: Any = None) -> gr.components.Component:
    """Set what the API page shows for one of the API's own components: ``description`` (what
    the value means) and, for an input, ``example`` instead of Gradio's placeholder.

    Set on the instance: subclassing a Gradio component would write an app.pyi stub at import.
    """
    as_input, as_output = component.api_info_as_input, component.api_info_as_output
    component.api_info_as_input = lambda: {**as_input(), "additional_description": description}
    component.api_info_as_output = lambda: {**as_output(), "description": description}  # what the page reads for outputs
    if example is not None:
        component.example_payload = lambda: example
        component.example_value = lambda: example
    return component


def example_file(name: str = API_EXAMPLE) -> dict[str, Any]:
    location = api_example_location(name)
    return {"path": location, "url": location, "orig_name": name, "meta": {"_type": "gradio.FileData"}}


def give_mcp_clients_every_output() -> None:
    """Make an MCP tool call return the face as an image, whatever the client sends.

    Gradio 6.31's MCP server answers a call that carries no progress token with the whole
    (face, status) result as ONE text block (str of the tuple), so the assistant never sees
    the image; with a token it returns an image block and a text block. gradio_client's
    Job.result() is a tuple exactly when an endpoint has several outputs: spread it.
    tests/test_mcp.py calls without a token, so a Gradio upgrade that changes this shows up.
    """
    from gradio.mcp import GradioMCPServer

    original = GradioMCPServer._execute_tool_without_progress
    if getattr(original, "spreads_outputs", False):
        return

    async def execute_tool_without_progress(self, job: Any) -> list[Any]:
        outputs = await original(self, job)
        if len(outputs) == 1 and isinstance(outputs[0], tuple):
            return list(outputs[0])
        return outputs

    execute_tool_without_progress.spreads_outputs = True
    GradioMCPServer._execute_tool_without_progress = execute_tool_without_progress


def build_demo(pipeline) -> gr.Blocks:
    """The whole page around one pipeline (tests pass their own)."""
    give_mcp_clients_every_output()
    handlers = Handlers(pipeline)
    sketch_to_face, drawing_to_face = make_api_functions(handlers)
    with gr.Blocks(title=TITLE) as demo:
        gr.Markdown(INTRO)
        with gr.Tabs(selected="draw", elem_id="tabs") as tabs:
            with gr.Tab("Draw", id="draw"):
                with gr.Row(equal_height=False):
                    with gr.Column():
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
                        drawing.blob_storage = ExpiringBlobStorage()
                        draw_button = gr.Button("Generate", variant="primary", elem_id="generate-drawing")
                    with gr.Column():
                        drawing_face = face_output("Face from your drawing", "drawing-face")
                        drawing_status = gr.Markdown(DRAW_PROMPT, elem_id="drawing-status")
            with gr.Tab("Upload", id="upload"):
                with gr.Row(equal_height=False):
                    with gr.Column():
                        upload = gr.Image(
                            label="Sketch (photo or scan)",
                            type="filepath",
                            image_mode=None,
                            sources=["upload", "clipboard"],
                            format="png",
                            elem_id="upload",
                        )
                        upload_button = gr.Button("Generate", variant="primary", elem_id="generate-upload")
                    with gr.Column():
                        upload_face = face_output("Face from the uploaded sketch", "upload-face")
                        upload_status = gr.Markdown(UPLOAD_PROMPT, elem_id="upload-status")
        enhance = gr.Checkbox(
            label="Restore face with GFPGAN",
            info="Sharper eyes, skin and hair, a few seconds per face: applied when you press Generate (the live preview skips it). The first use downloads the model.",
            value=False,
            elem_id="enhance",
        )

        generate = dict(api_visibility="private", concurrency_id=GENERATION_SLOT, concurrency_limit=CONCURRENCY_LIMIT)
        preview = dict(generate, show_progress="minimal")  # a small timer; the last face stays visible
        # always_last: while one preview runs, strokes collapse into one more request with the
        # latest drawing, so a fast drawer (or many visitors) never builds a backlog.
        drawing.change(handlers.live_drawing, [drawing], [drawing_face, drawing_status], trigger_mode="always_last", **preview)
        draw_button.click(handlers.generate_drawing_on_page, [drawing, enhance], [drawing_face, drawing_status], **generate)
        # preprocess=False: Gradio must not open the upload itself (its errors are opaque).
        upload.upload(handlers.preview_upload, [upload], [upload, upload_face, upload_status], preprocess=False, **preview)
        upload.clear(lambda: (None, UPLOAD_PROMPT), None, [upload_face, upload_status], queue=False, api_visibility="private")
        upload_button.click(handlers.generate_upload_on_page, [upload, enhance], [upload_face, upload_status], preprocess=False, **generate)

        paths = example_paths()
        if paths:
            examples = gr.Examples(
                examples=[[path] for path in paths],
                inputs=[upload],  # one input: shown as a row of thumbnails
                outputs=[upload_face, upload_status],
                fn=handlers.example_face,
                cache_examples=True,
                cache_mode="eager",
                preload=False,  # nothing is shown before the visitor draws or picks something
                label="Examples: click one to open it in the Upload tab with its face",
                examples_per_page=12,
                api_visibility="private",
            )
            examples.dataset.click(lambda: gr.Tabs(selected="upload"), None, tabs, queue=False, api_visibility="private")

        # The public API: its own hidden components, so its examples and defaults are real files
        # and every error reaches the caller as an error.
        described = parameter_descriptions(sketch_to_face) | parameter_descriptions(drawing_to_face)
        with gr.Group(visible=False):
            api_sketch = gr.Image(label="sketch", type="filepath", image_mode=None, format="png")
            document_for_api(api_sketch, described["sketch"], example_file())
            api_drawing = gr.ImageEditor(label="drawing", type="numpy", image_mode="RGBA", layers=False)
            document_for_api(api_drawing, described["drawing"], {"background": None, "layers": [], "composite": example_file()})
            api_enhance = document_for_api(gr.Checkbox(label="enhance", value=False), described["enhance"])
            api_face = document_for_api(gr.Image(label="face", type="filepath", format="png"), described["face"])
            api_status = document_for_api(gr.JSON(label="status"), described["status"])
        api_event = dict(concurrency_id=GENERATION_SLOT, concurrency_limit=CONCURRENCY_LIMIT)
        gr.on([], sketch_to_face, [api_sketch, api_enhance], [api_face, api_status], api_name="generate", preprocess=False, **api_event)
        gr.on([], drawing_to_face, [api_drawing, api_enhance], [api_face, api_status], api_name="generate_drawing", **api_event)
    demo.queue(max_size=QUEUE_MAX_SIZE, default_concurrency_limit=CONCURRENCY_LIMIT)
    return demo


def face_output(label: str, elem_id: str) -> gr.Image:
    return gr.Image(
        label=label,
        type="filepath",
        format="png",  # lossless download (Gradio's default is webp)
        interactive=False,
        buttons=["download", "fullscreen"],
        elem_id=elem_id,
    )


def launch_options() -> dict[str, Any]:
    """Options for demo.launch() shared by the Space and the tests."""
    return dict(
        max_file_size=MAX_FILE_SIZE,
        share=False,
        show_error=False,
        allowed_paths=[str(EXAMPLES_DIR)],
        mcp_server=True,  # the endpoints are also MCP tools at /gradio_api/mcp/
        run_history=False,  # the browser would re-upload every live preview's inputs to record it
    )


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
