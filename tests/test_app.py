"""The Space as a visitor or an API client meets it: app.py served on 127.0.0.1 (see conftest)."""

from __future__ import annotations

import os
import struct
import subprocess
import sys
import zlib
from pathlib import Path

import gradio as gr
import numpy as np
import pytest
from gradio_client import handle_file
from PIL import Image, ImageDraw

import app
from sketch2face import photo_to_sketch, preprocess

REPO_ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = REPO_ROOT / "examples" / "01_short_hair.png"


def draw_face_strokes(size=(320, 400)) -> np.ndarray:
    """Black strokes (alpha 255) on a fully transparent canvas, as the browser Sketchpad exports.

    Transparent pixels are RGB 0: a plain RGB conversion would make the paper black.
    """
    width, height = size
    layer = Image.new("RGBA", size, (0, 0, 0, 0))
    draw = ImageDraw.Draw(layer)
    ink = (0, 0, 0, 255)
    draw.ellipse((width * 0.2, height * 0.12, width * 0.8, height * 0.85), outline=ink, width=4)
    for cx in (0.38, 0.62):
        draw.ellipse((width * (cx - 0.06), height * 0.42, width * (cx + 0.06), height * 0.47), outline=ink, width=3)
        draw.ellipse((width * (cx - 0.015), height * 0.435, width * (cx + 0.015), height * 0.455), fill=ink)
    draw.line([(width * 0.5, height * 0.48), (width * 0.47, height * 0.6), (width * 0.53, height * 0.61)], fill=ink, width=3)
    draw.arc((width * 0.38, height * 0.62, width * 0.62, height * 0.72), 20, 160, fill=ink, width=4)
    return np.asarray(layer)


def flatten_on_white(rgba: np.ndarray) -> np.ndarray:
    alpha = rgba[..., 3:4].astype(np.float32) / 255.0
    return (rgba[..., :3] * alpha + 255.0 * (1.0 - alpha)).round().astype(np.uint8)


def png_header_only(width: int, height: int) -> bytes:
    """A PNG that claims width x height pixels but carries no pixel data (a decompression bomb's header)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IEND", b"")


def assert_looks_like_a_face_photo(image: Image.Image) -> None:
    """Not blank and not line art: a photo has spread-out tones, mostly mid-grey, and colour.

    Judged on the central half of the frame, where the face is: the generated background
    (often a light studio grey) is legitimately outside the mid-tones.
    """
    width, height = image.size
    image = image.crop((width // 4, height // 4, 3 * width // 4, 3 * height // 4))
    gray = np.asarray(image.convert("L"), dtype=np.float32)
    saturation = np.asarray(image.convert("HSV"), dtype=np.float32)[..., 1]
    mid_tones = ((gray > 40) & (gray < 215)).mean()
    assert gray.std() > 20, f"nearly uniform output (std {gray.std():.1f})"
    assert mid_tones > 0.5, f"looks like line art: only {mid_tones:.0%} mid-tone pixels"
    assert saturation.mean() > 12, f"no colour (mean saturation {saturation.mean():.1f})"


def app_error_message(excinfo) -> str:
    return str(excinfo.value)


# -- /generate -----------------------------------------------------------------------


def test_generate_endpoint_returns_a_face_at_the_input_aspect(app_client, served_pipeline):
    result_path, status = app_client.predict(handle_file(str(EXAMPLE)), False, api_name="/generate")
    assert status == {"restoration": {"requested": False, "applied": False, "reason": None}, "notes": []}
    face = Image.open(result_path)
    face.load()
    assert face.format == "PNG"
    assert face.mode == "RGB"
    canvas_scale = 2.0 if served_pipeline.upscaler is not None else 1.0
    assert face.size == preprocess.output_size(preprocess.normalise(str(EXAMPLE)), canvas_scale, at_least_input=True)
    with Image.open(EXAMPLE) as sketch:
        assert face.size[0] / face.size[1] == pytest.approx(sketch.size[0] / sketch.size[1], abs=0.01)
    assert_looks_like_a_face_photo(face)


def test_drawing_endpoint_flattens_the_transparent_canvas_onto_white(app_client, tmp_path):
    strokes = draw_face_strokes()
    canvas_path = tmp_path / "canvas.png"
    flat_path = tmp_path / "flat.png"
    Image.fromarray(strokes, "RGBA").save(canvas_path)
    Image.fromarray(flatten_on_white(strokes), "RGB").save(flat_path)

    drawing = {"background": None, "layers": [], "composite": handle_file(str(canvas_path))}
    drawing_face, drawing_status = app_client.predict(drawing, False, api_name="/generate_drawing")
    upload_face, upload_status = app_client.predict(handle_file(str(flat_path)), False, api_name="/generate")
    assert drawing_status == upload_status
    from_drawing = np.asarray(Image.open(drawing_face).convert("RGB"))
    from_upload = np.asarray(Image.open(upload_face).convert("RGB"))
    assert from_drawing.shape == from_upload.shape
    assert np.abs(from_drawing.astype(int) - from_upload.astype(int)).max() <= 2


def test_sketchpad_dict_gives_the_same_face_as_the_flattened_image_in_the_pipeline(served_pipeline):
    strokes = draw_face_strokes()
    drawing = {"background": None, "layers": [strokes], "composite": strokes}
    from_drawing = np.asarray(served_pipeline(drawing), dtype=int)
    from_flat = np.asarray(served_pipeline(flatten_on_white(strokes)), dtype=int)
    assert from_drawing.shape == from_flat.shape
    assert np.abs(from_drawing - from_flat).max() <= 2


def test_enhance_never_fails_the_request_and_the_status_says_whether_gfpgan_ran(app_client):
    """GFPGAN restores (2x, like the upscaler) when its weights are there; offline without them the request still
    returns the unrestored face, and the status says why and names the fix."""
    plain_path, plain_status = app_client.predict(handle_file(str(EXAMPLE)), False, api_name="/generate")
    enhanced_path, status = app_client.predict(handle_file(str(EXAMPLE)), True, api_name="/generate")
    plain, enhanced = Image.open(plain_path), Image.open(enhanced_path)
    assert enhanced.mode == "RGB"
    assert plain_status["restoration"] == {"requested": False, "applied": False, "reason": None}
    restoration = status["restoration"]
    assert restoration["requested"] is True
    if restoration["applied"]:
        assert restoration["reason"] is None
        assert enhanced.size[0] / enhanced.size[1] == pytest.approx(plain.size[0] / plain.size[1], abs=0.01)
        assert enhanced.size[0] >= plain.size[0]  # both at least the drawing's size; GFPGAN's is 2x the canvas
    else:
        assert "SKETCH2FACE_GFPGAN_PATH" in restoration["reason"]
        assert enhanced.size == plain.size
        assert np.array_equal(np.asarray(enhanced), np.asarray(plain))


# -- errors reach the caller as our one-line messages --------------------------------


def test_blank_canvas_asks_for_a_drawing(app_client, tmp_path):
    blank = tmp_path / "blank.png"
    Image.new("RGBA", (512, 640), (0, 0, 0, 0)).save(blank)  # untouched Sketchpad export
    drawing = {"background": None, "layers": [], "composite": handle_file(str(blank))}
    with pytest.raises(Exception) as excinfo:
        app_client.predict(drawing, False, api_name="/generate_drawing")
    assert "Draw a face first" in app_error_message(excinfo)


def test_blank_upload_asks_for_a_drawing(app_client, tmp_path):
    blank = tmp_path / "white.png"
    Image.new("RGB", (400, 500), "white").save(blank)
    with pytest.raises(Exception) as excinfo:
        app_client.predict(handle_file(str(blank)), False, api_name="/generate")
    assert "Draw a face first" in app_error_message(excinfo)


@pytest.mark.parametrize(
    ("name", "content", "expected"),
    [
        ("notes.txt", b"this is a text file, not a drawing\n" * 20, "not an image we can read"),
        # Gradio's own gr.Image would open this before our code runs (measured: a generic error).
        ("bomb.png", png_header_only(100_000, 100_000), "too large"),
    ],
)
def test_bad_uploads_get_our_message_not_gradios(app_client, tmp_path, name, content, expected):
    upload = tmp_path / name
    upload.write_bytes(content)
    with pytest.raises(Exception) as excinfo:
        app_client.predict(handle_file(str(upload)), False, api_name="/generate")
    message = app_error_message(excinfo)
    assert expected in message
    assert "upstream Gradio app" not in message


def test_upload_over_the_size_limit_is_refused_by_client_and_server(app_url, app_client, tmp_path):
    import httpx

    too_big = tmp_path / "huge.png"
    too_big.write_bytes(b"\0" * (11 * 1024 * 1024))  # the limit is 10 MB
    with pytest.raises(ValueError, match="exceeds the maximum file size of 10485760 bytes"):
        app_client.predict(handle_file(str(too_big)), False, api_name="/generate")
    # A client that ignores the advertised limit is stopped by the server before storing it.
    response = httpx.post(app_url.rstrip("/") + "/gradio_api/upload", files={"files": ("huge.png", too_big.read_bytes())}, timeout=60)
    assert response.status_code == 413


def test_upload_values_gradio_may_hand_over():
    import base64

    from sketch2face import InputError

    png = (REPO_ROOT / "examples" / "01_short_hair.png").read_bytes()
    assert app.upload_source({"path": "/tmp/x.png", "url": None}) == "/tmp/x.png"
    assert app.upload_source(str(EXAMPLE)) == str(EXAMPLE)  # cached examples pass a path
    data_url = "data:image/png;base64," + base64.b64encode(png).decode()
    assert app.upload_source({"path": None, "url": data_url}) == png
    for value, message in [
        (None, "Draw a face first"),
        ({"path": None, "url": "data:image/png;base64,@@not base64@@"}, "not valid base64"),
        ({"path": None, "url": "data:image/png;base64," + "A" * (15 * 1024 * 1024)}, "larger than 10mb"),
    ]:
        with pytest.raises(InputError, match=message):
            app.upload_source(value)


# -- the README's client code, verbatim ------------------------------------------------


def readme_client_code() -> str:
    text = (REPO_ROOT / "README.md").read_text()
    blocks = [block.split("```", 1)[0] for block in text.split("```python")[1:]]
    matching = [block for block in blocks if "gradio_client" in block and 'api_name="/generate"' in block]
    assert len(matching) == 1, "README.md must have exactly one python block calling /generate with gradio_client"
    return matching[0]


def test_readme_gradio_client_example_runs_against_the_app(app_url, monkeypatch):
    code = readme_client_code()
    assert 'Client("' in code and "handle_file(" in code
    space_id = code.split('Client("', 1)[1].split('"', 1)[0]
    monkeypatch.chdir(REPO_ROOT)  # the example's paths are relative to a clone
    namespace: dict = {}
    exec(compile(code.replace(f'Client("{space_id}"', f'Client("{app_url}"'), "README.md", "exec"), namespace)
    face_path = namespace["face_path"]
    with Image.open(face_path) as face:
        assert face.mode == "RGB"
        assert_looks_like_a_face_photo(face)


# -- the page ----------------------------------------------------------------------------


def page_config(app_url) -> dict:
    import httpx

    return httpx.get(app_url.rstrip("/") + "/config", timeout=30).json()


def dependencies_of(config: dict, elem_id: str) -> dict[str, dict]:
    """The events a component triggers, by event name."""
    ids = {component["id"] for component in config["components"] if component.get("props", {}).get("elem_id") == elem_id}
    return {event: dependency for dependency in config["dependencies"] for target, event in dependency["targets"] if target in ids}


def test_page_has_both_tabs_examples_and_the_limits(app_url):
    config = page_config(app_url)
    kinds = [component["type"] for component in config["components"]]
    assert "imageeditor" in kinds  # the Sketchpad
    assert "image" in kinds
    assert "checkbox" in kinds
    labels = {component.get("props", {}).get("label") for component in config["components"]}
    assert {"Restore face with GFPGAN", "Face from your drawing", "Face from the uploaded sketch"} <= labels
    datasets = [component for component in config["components"] if component["type"] == "dataset"]
    assert datasets and len(datasets[0]["props"]["samples"]) >= 6
    assert config.get("max_file_size") == 10 * 1024 * 1024


def test_only_the_two_endpoints_are_public_and_the_page_events_are_private(app_url):
    config = page_config(app_url)
    public = {dependency["api_name"] for dependency in config["dependencies"] if dependency["api_visibility"] == "public"}
    assert public == {"generate", "generate_drawing"}
    for elem_id in ("sketchpad", "generate-drawing", "upload", "generate-upload"):
        for event, dependency in dependencies_of(config, elem_id).items():
            assert dependency["api_visibility"] == "private", (elem_id, event)
    # Nothing fills the page before the visitor does something: no load events.
    assert not [dependency for dependency in config["dependencies"] for _, event in dependency["targets"] if event == "load"]


def test_the_canvas_updates_the_face_live_without_piling_up_requests(app_url):
    live = dependencies_of(page_config(app_url), "sketchpad")["change"]
    assert live["trigger_mode"] == "always_last"  # strokes made while one runs become ONE more request
    assert live["show_progress"] == "minimal"
    assert live["queue"] is True  # under the queue's size limit like every generation


def test_every_event_that_runs_the_model_shares_one_slot(tiny_pipeline):
    demo = app.build_demo(tiny_pipeline)
    in_the_slot = set()
    for block_fn in demo.fns.values():
        if block_fn.concurrency_id == app.GENERATION_SLOT:
            assert block_fn.concurrency_limit == 1
            in_the_slot.add(getattr(block_fn.fn, "__name__", ""))
    assert in_the_slot >= {
        "live_drawing",
        "preview_upload",
        "generate_drawing_on_page",
        "generate_upload_on_page",
        "sketch_to_face",
        "drawing_to_face",
    }
    assert demo._queue.max_size == app.QUEUE_MAX_SIZE


def test_api_page_examples_are_real_files_and_every_value_is_described(app_url):
    import httpx

    info = httpx.get(app_url.rstrip("/") + "/gradio_api/info", timeout=30).json()["named_endpoints"]
    assert set(info) == {"/generate", "/generate_drawing"}
    for name, endpoint in info.items():
        assert endpoint["description"], name
        for parameter in endpoint["parameters"]:
            assert len(parameter["python_type"]["description"]) > 40, (name, parameter["parameter_name"])
            example = parameter["example_input"]
            files = [example] if parameter["parameter_name"] == "sketch" else [example["composite"]] if parameter["parameter_name"] == "drawing" else []
            for file in files:
                assert file["url"] == file["path"] == "examples/01_short_hair.png"
                assert (REPO_ROOT / file["path"]).is_file()
        assert [value["label"] for value in endpoint["returns"]] == ["face", "status"]
        assert all(len(value["python_type"]["description"]) > 10 for value in endpoint["returns"])


def test_on_a_space_the_api_examples_are_the_spaces_own_files(monkeypatch):
    monkeypatch.setenv("SPACE_ID", "someone/sketch2face")
    assert app.api_example_location() == "https://huggingface.co/spaces/someone/sketch2face/resolve/main/examples/01_short_hair.png"


def test_examples_are_reproducible_from_the_script(tmp_path):
    sys.path.insert(0, str(REPO_ROOT / "scripts"))
    try:
        import make_examples
    finally:
        sys.path.remove(str(REPO_ROOT / "scripts"))
    make_examples.main(["--output-dir", str(tmp_path)])
    made = sorted(path.name for path in tmp_path.glob("*.png"))
    shipped = sorted(path.name for path in (REPO_ROOT / "examples").glob("*.png"))
    assert made == shipped and len(made) >= 6
    for name in made:
        assert np.array_equal(np.asarray(Image.open(tmp_path / name)), np.asarray(Image.open(REPO_ROOT / "examples" / name))), name


def test_every_example_generates_and_reports_what_was_fixed(served_pipeline):
    notes = {}
    for path in app.example_paths():
        result = served_pipeline.generate(path)
        assert result.image.mode == "RGB"
        notes[Path(path).stem] = " ".join(result.notes)
    assert "inverted" in notes["05_white_on_black"]
    assert "thinned" in notes["06_thick_marker"]
    assert notes["01_short_hair"] == ""


def test_app_start_fails_in_one_line_when_the_hub_model_is_unreachable(tmp_path):
    env = dict(os.environ, SKETCH2FACE_MODEL="nobody/no-such-model", HF_HUB_OFFLINE="1", HF_HOME=str(tmp_path / "hf"))
    completed = subprocess.run(
        [sys.executable, str(REPO_ROOT / "app.py")], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=240
    )
    assert completed.returncode == 1
    lines = [line for line in completed.stderr.splitlines() if line.strip()]
    assert lines[-1].startswith("error: Could not load model 'nobody/no-such-model'")
    assert "HF_HUB_OFFLINE" in lines[-1]
    assert "Traceback" not in completed.stderr


# -- colour photos ------------------------------------------------------------------------


def colour_photo(served_pipeline, tmp_path) -> Path:
    """A colour face photo made here: the served model's face for an example, as a JPEG."""
    path = tmp_path / "photo.jpg"
    served_pipeline(str(EXAMPLE)).save(path, quality=92)
    return path


def test_a_colour_photo_is_sketched_first_and_the_caller_is_told(app_client, served_pipeline, tmp_path):
    photo = colour_photo(served_pipeline, tmp_path)
    assert photo_to_sketch.looks_like_a_colour_photo(photo)
    face_path, status = app_client.predict(handle_file(str(photo)), False, api_name="/generate")
    assert status["notes"] == [photo_to_sketch.PHOTO_NOTE]
    face = Image.open(face_path)
    assert_looks_like_a_face_photo(face)
    # The model saw the pencil version, not the photo itself.
    sketched = np.asarray(served_pipeline(photo_to_sketch.pencil_sketch(str(photo))), dtype=int)
    assert np.abs(np.asarray(face.convert("RGB"), dtype=int) - sketched).max() <= 2


# -- the page's own handlers: they explain, never raise ------------------------------------


class UnavailableRestorer:
    def restore(self, face, upscaled=None):
        from sketch2face.restore import RestorationUnavailable

        raise RestorationUnavailable("The GFPGAN weights are not in /cache and offline mode is on.")


def canvas_value(strokes: np.ndarray | None = None) -> dict:
    """A Sketchpad value as Gradio hands it over (type="numpy", RGBA)."""
    layer = strokes if strokes is not None else np.zeros((640, 512, 4), np.uint8)
    white = np.full((640, 512, 4), 255, np.uint8)
    composite = flatten_on_white(layer)
    return {"background": white, "layers": [layer], "composite": np.dstack([composite, np.full(composite.shape[:2], 255, np.uint8)])}


def test_the_live_preview_waits_for_a_drawing_then_shows_its_face(served_pipeline):
    handlers = app.Handlers(served_pipeline)
    assert handlers.live_drawing(canvas_value()) == (None, app.DRAW_PROMPT)
    assert handlers.live_drawing(None) == (None, app.DRAW_PROMPT)
    drawing = canvas_value(draw_face_strokes(size=(512, 640)))
    face_path, line = handlers.live_drawing(drawing)
    assert line == app.LIVE_NOTE
    face = Image.open(face_path)
    assert face.size[0] / face.size[1] == pytest.approx(512 / 640, abs=0.02)
    assert_looks_like_a_face_photo(face)
    # The preview stays at the canvas's resolution; Generate gives the face at the drawing's size.
    generated = Image.open(handlers.generate_drawing_on_page(drawing, False)[0])
    assert face.size[0] < 512 <= generated.size[0]


def test_a_bad_upload_is_explained_as_soon_as_it_arrives(served_pipeline, tmp_path):
    handlers = app.Handlers(served_pipeline)
    text = tmp_path / "notes.png"
    text.write_bytes(b"Shopping list: eggs, milk, pencils.\n" * 30)
    kept = gr.update()
    # The unreadable file leaves the upload box (it could only show as a broken image).
    assert handlers.preview_upload({"path": str(text), "url": None}) == (
        None,
        None,
        "⚠️ The file is not an image we can read (use PNG, JPEG, WebP, GIF or BMP).",
    )
    blank = tmp_path / "blank.png"
    Image.new("RGB", (400, 500), "white").save(blank)
    assert handlers.preview_upload({"path": str(blank), "url": None}) == (kept, None, "⚠️ Draw a face first: the image is blank.")
    assert handlers.preview_upload(None) == (kept, None, app.UPLOAD_PROMPT)
    box, face_path, line = handlers.preview_upload({"path": str(EXAMPLE), "url": None})
    assert box == kept and Path(face_path).is_file() and line == app.PLAIN_NOTE


def test_a_skipped_restoration_is_explained_on_the_page_with_the_fix(tiny_model_dir):
    from sketch2face import Sketch2Face

    handlers = app.Handlers(Sketch2Face.from_pretrained(tiny_model_dir, restorer=UnavailableRestorer()))
    face_path, line = handlers.generate_upload_on_page({"path": str(EXAMPLE), "url": None}, True)
    assert Path(face_path).is_file()  # the unrestored face is still shown
    assert line.startswith("⚠️ **GFPGAN was skipped**")
    assert "SKETCH2FACE_GFPGAN_PATH" in line
    assert line.count("offline mode is on") == 1  # the pipeline's note is not repeated
    face_path, line = handlers.generate_drawing_on_page(canvas_value(), True)
    assert face_path is None and line == "⚠️ Draw a face first: the canvas is empty."


def test_an_example_is_shown_with_its_name_and_face(served_pipeline):
    face_path, line = app.Handlers(served_pipeline).example_face(str(REPO_ROOT / "examples" / "05_white_on_black.png"))
    assert "**05_white_on_black**" in line and "inverted" in line
    assert Path(face_path).is_file()


def test_blank_canvas_detection():
    assert app.is_blank_canvas(None)
    assert app.is_blank_canvas(canvas_value())
    assert app.is_blank_canvas({"background": None, "layers": [], "composite": None})
    assert not app.is_blank_canvas(canvas_value(draw_face_strokes(size=(512, 640))))
    grey_paper = {"background": None, "layers": [], "composite": np.full((640, 512, 3), 120, np.uint8)}
    assert not app.is_blank_canvas(grey_paper)  # not blank: the loader decides what it is
