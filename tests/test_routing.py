"""A second generator for shaded sketches: each kind of drawing reaches its own generator."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from sketch2face import Sketch2Face, preprocess
from sketch2face.errors import ModelLoadError
from sketch2face.networks import UNetGenerator
from sketch2face.pipeline import SHADED_SKETCHES_SUBFOLDER, load_shaded_sketch_generator
from tests.drawings import drawing
from tests.test_shift_average import shaded_sketch


def tiny_generator(seed: int, **shape) -> UNetGenerator:
    torch.manual_seed(seed)
    generator = UNetGenerator(ngf=8, **shape)
    # Untrained BatchNorm statistics would make every face alike; give each network its own.
    for module in generator.modules():
        if isinstance(module, torch.nn.BatchNorm2d):
            module.running_mean.uniform_(-0.5, 0.5)
    return generator.eval()


@pytest.fixture(scope="module")
def routed_dir(tmp_path_factory) -> Path:
    directory = tmp_path_factory.mktemp("routed")
    tiny_generator(0).save_pretrained(directory)
    tiny_generator(1).save_pretrained(directory / SHADED_SKETCHES_SUBFOLDER)
    return directory


@pytest.fixture(scope="module")
def drawings() -> dict[str, np.ndarray]:
    canvases = {"line": preprocess.normalise(drawing()).canvas, "shaded": preprocess.normalise(shaded_sketch()).canvas}
    assert preprocess.is_line_drawing(canvases["line"]) and not preprocess.is_line_drawing(canvases["shaded"])
    return canvases


@pytest.mark.parametrize("shift_average", [True, False])
def test_line_drawings_reach_the_main_generator_and_shaded_sketches_the_other(routed_dir, drawings, shift_average):
    routed = Sketch2Face.from_pretrained(routed_dir, shift_average=shift_average)
    assert routed.shaded_sketch_generator is not None
    main_only = Sketch2Face(UNetGenerator.from_pretrained(routed_dir), shift_average=shift_average)
    shaded_only = Sketch2Face(UNetGenerator.from_pretrained(routed_dir / SHADED_SKETCHES_SUBFOLDER), shift_average=shift_average)
    for kind, alone, other in (("line", main_only, shaded_only), ("shaded", shaded_only, main_only)):
        face = routed.generate_canvas(drawings[kind])
        assert np.array_equal(face, alone.generate_canvas(drawings[kind])), kind
        assert not np.array_equal(face, other.generate_canvas(drawings[kind])), kind  # the two really differ


def test_the_whole_path_serves_the_shaded_generators_face(routed_dir):
    routed = Sketch2Face.from_pretrained(routed_dir)
    shaded_only = Sketch2Face(UNetGenerator.from_pretrained(routed_dir / SHADED_SKETCHES_SUBFOLDER))
    sketch = (shaded_sketch() * 255).astype(np.uint8)
    assert np.array_equal(np.asarray(routed(sketch)), np.asarray(shaded_only(sketch)))


def test_weights_with_one_generator_send_every_drawing_to_it(tiny_model_dir, drawings):
    single = Sketch2Face.from_pretrained(tiny_model_dir, shift_average=False)
    assert single.shaded_sketch_generator is None and load_shaded_sketch_generator(tiny_model_dir) is None
    # Nothing to route and nothing to average: the check is skipped, one pass for every drawing.
    assert not single.is_line_drawing(drawings["line"])


def test_generators_of_different_shapes_are_refused_in_one_line(tmp_path):
    tiny_generator(0).save_pretrained(tmp_path)
    tiny_generator(1, upsample="resize").save_pretrained(tmp_path / SHADED_SKETCHES_SUBFOLDER)
    with pytest.raises(ModelLoadError, match="upsample is 'resize', the main generator's 'transposed'") as excinfo:
        Sketch2Face.from_pretrained(tmp_path)
    assert "\n" not in str(excinfo.value)


def test_a_broken_shaded_sketch_folder_is_a_one_line_model_load_error(routed_dir, tmp_path):
    for name in ("config.json", "model.safetensors"):
        shutil.copy(routed_dir / name, tmp_path / name)
    (tmp_path / SHADED_SKETCHES_SUBFOLDER).mkdir()
    with pytest.raises(ModelLoadError, match="no model.safetensors"):
        Sketch2Face.from_pretrained(tmp_path)
    shutil.copy(routed_dir / SHADED_SKETCHES_SUBFOLDER / "config.json", tmp_path / SHADED_SKETCHES_SUBFOLDER)
    (tmp_path / SHADED_SKETCHES_SUBFOLDER / "model.safetensors").write_bytes(b"not safetensors")
    with pytest.raises(ModelLoadError, match="Could not load the shaded-sketch generator") as excinfo:
        Sketch2Face.from_pretrained(tmp_path)
    assert "\n" not in str(excinfo.value)


def test_an_unreachable_hub_names_the_shaded_sketch_generator_it_could_not_fetch(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ModelLoadError, match=f"nobody/nothing/{SHADED_SKETCHES_SUBFOLDER}' from the Hugging Face Hub: HF_HUB_OFFLINE"):
        load_shaded_sketch_generator("nobody/nothing")


def test_a_hub_repo_without_a_shaded_sketch_generator_loads_without_one(hub_without_files):
    assert load_shaded_sketch_generator("someone/one-generator") is None
    assert hub_without_files == [("someone/one-generator", SHADED_SKETCHES_SUBFOLDER, "config.json")]
