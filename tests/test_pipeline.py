"""The Python API: ``Sketch2Face.from_pretrained(...)(image, enhance=False)``."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageDraw

from sketch2face import GenerationResult, InputError, Sketch2Face, preprocess
from .drawings import drawing

REPO_ROOT = Path(__file__).resolve().parent.parent


def test_call_returns_an_rgb_image_in_the_input_frame(tiny_pipeline):
    sketch = drawing()
    face = tiny_pipeline(sketch)
    assert isinstance(face, Image.Image) and face.mode == "RGB"
    assert face.size == preprocess.output_size(preprocess.normalise(sketch), at_least_input=True) == (300, 400)
    assert face.size[0] / face.size[1] == pytest.approx(300 / 400, abs=0.01)


def test_generation_is_deterministic(tiny_pipeline):
    first = np.asarray(tiny_pipeline(drawing()))
    second = np.asarray(tiny_pipeline(drawing()))
    assert np.array_equal(first, second)


def test_every_input_kind_gives_the_same_face(tiny_pipeline, tmp_path):
    sketch = drawing()
    path = tmp_path / "sketch.png"
    sketch.save(path)
    buffer = io.BytesIO()
    sketch.save(buffer, format="PNG")
    strokes = np.zeros((400, 300, 4), np.uint8)
    strokes[..., 3] = 255 - np.asarray(sketch)  # black ink on a transparent canvas
    reference = np.asarray(tiny_pipeline(sketch))
    for source in (path, str(path), buffer.getvalue(), np.asarray(sketch), sketch.convert("RGB"), {"background": None, "layers": [], "composite": strokes}):
        assert np.array_equal(np.asarray(tiny_pipeline(source)), reference), type(source).__name__


def test_generate_reports_what_it_fixed(tiny_pipeline):
    plain = tiny_pipeline.generate(drawing())
    assert isinstance(plain, GenerationResult)
    assert plain.notes == [] and not plain.enhanced
    assert plain.sketch.size == preprocess.CANVAS_SIZE

    inverted = tiny_pipeline.generate(Image.fromarray(255 - np.asarray(drawing())))
    assert any("inverted" in note for note in inverted.notes)
    thick = tiny_pipeline.generate(drawing(size=(512, 640), width=36))
    assert any("thinned" in note for note in thick.notes)


def test_unusable_input_raises_a_one_line_input_error(tiny_pipeline):
    with pytest.raises(InputError, match="Draw a face first") as excinfo:
        tiny_pipeline(Image.new("RGB", (256, 320), "white"))
    assert "\n" not in str(excinfo.value)


def test_one_pipeline_serves_concurrent_requests(tiny_pipeline):
    from concurrent.futures import ThreadPoolExecutor

    sketches = [drawing(), drawing(size=(256, 256)), drawing(width=5)]
    expected = [np.asarray(tiny_pipeline(sketch)) for sketch in sketches]
    with ThreadPoolExecutor(max_workers=3) as pool:
        results = list(pool.map(lambda sketch: np.asarray(tiny_pipeline(sketch)), sketches * 3))
    for index, result in enumerate(results):
        assert np.array_equal(result, expected[index % 3])


def test_readme_python_example_runs_on_the_bundled_weights(tmp_path, monkeypatch, served_pipeline):
    text = (REPO_ROOT / "README.md").read_text()
    blocks = [block.split("```", 1)[0] for block in text.split("```python")[1:]]
    [code] = [block for block in blocks if "Sketch2Face.from_pretrained()" in block]
    (tmp_path / "examples").symlink_to(REPO_ROOT / "examples")
    monkeypatch.chdir(tmp_path)  # the example writes face.png into the current folder
    namespace: dict = {}
    exec(compile(code, "README.md", "exec"), namespace)
    with Image.open(tmp_path / "face.png") as face:
        assert face.mode == "RGB"
    assert any("inverted" in note for note in namespace["result"].notes)
