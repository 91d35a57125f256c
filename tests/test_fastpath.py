"""The fast inference path computes what the plain eval-mode generator computes."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from sketch2face import preprocess
from sketch2face.fastpath import fold_batchnorm, optimise_for_inference
from sketch2face.networks import UNetGenerator

REPO_ROOT = Path(__file__).resolve().parent.parent


def example_batch(count: int = 3) -> torch.Tensor:
    canvases = [preprocess.normalise(path).canvas for path in sorted((REPO_ROOT / "examples").glob("*.png"))[:count]]
    return torch.from_numpy(np.stack(canvases) * 2.0 - 1.0)[:, None].float()


def trained_looking_generator(**config) -> UNetGenerator:
    """Random weights plus non-trivial BatchNorm statistics and affine terms, like a trained model."""
    torch.manual_seed(0)
    generator = UNetGenerator(**config)
    with torch.no_grad():
        for layer in generator.modules():
            if isinstance(layer, nn.BatchNorm2d):
                layer.running_mean.uniform_(-0.5, 0.5)
                layer.running_var.uniform_(0.5, 2.0)
                layer.weight.uniform_(0.5, 1.5)
                layer.bias.uniform_(-0.2, 0.2)
    return generator.eval()


@pytest.fixture(scope="module")
def served_generator():
    """The plain eval-mode generator the app serves (weights/ or $SKETCH2FACE_MODEL)."""
    from sketch2face.pipeline import load_generator

    return load_generator()


def as_image(tensor: torch.Tensor) -> torch.Tensor:
    return ((tensor.clamp(-1, 1) + 1) * 127.5).round()


def test_fast_generator_matches_the_served_model_on_the_example_sketches(served_generator):
    fast = optimise_for_inference(served_generator)
    batch = example_batch()
    with torch.inference_mode():
        expected, got = served_generator(batch), fast(batch)
    assert got.shape == expected.shape and got.is_contiguous()
    assert (got - expected).abs().max().item() < 1e-4
    # As the uint8 faces the pipeline returns: identical but for rare rounding ties.
    assert (as_image(got) - as_image(expected)).abs().max().item() <= 1


@pytest.mark.parametrize("channels_last", [True, False])
def test_folding_is_exact_for_non_trivial_batchnorm_statistics(channels_last):
    plain = trained_looking_generator(ngf=8)
    fast = optimise_for_inference(plain, channels_last=channels_last)
    assert not any(isinstance(layer, (nn.BatchNorm2d, nn.Dropout)) for layer in fast.modules())
    batch = example_batch(2)
    with torch.inference_mode():
        assert torch.allclose(fast(batch), plain(batch), atol=1e-5, rtol=0)


def test_original_generator_is_left_untouched():
    plain = trained_looking_generator(ngf=8)
    before = {name: tensor.clone() for name, tensor in plain.state_dict().items()}
    optimise_for_inference(plain)
    after = plain.state_dict()
    assert before.keys() == after.keys()
    assert all(torch.equal(before[name], after[name]) for name in before)
    assert sum(isinstance(layer, nn.BatchNorm2d) for layer in plain.modules()) > 0


def test_fold_batchnorm_refuses_norms_without_running_statistics():
    layers = nn.Sequential(nn.Conv2d(1, 4, 3), nn.BatchNorm2d(4, track_running_stats=False))
    with pytest.raises(ValueError, match="running statistics"):
        fold_batchnorm(layers)


def test_pipeline_with_the_fast_generator_gives_the_same_faces(served_generator):
    from sketch2face import Sketch2Face

    fast_pipeline = Sketch2Face(optimise_for_inference(served_generator), shift_average=False)
    for path in sorted((REPO_ROOT / "examples").glob("*.png"))[:3]:
        sketch = preprocess.normalise(path)
        with torch.inference_mode():  # the plain generator, by hand
            plain = served_generator(torch.from_numpy(sketch.canvas * 2.0 - 1.0)[None, None])[0]
        face = as_image(plain).to(torch.uint8).permute(1, 2, 0).numpy()
        expected = preprocess.uncanvas(face, sketch, preprocess.output_size(sketch, at_least_input=True)).astype(np.int16)
        got = np.asarray(fast_pipeline(str(path)), dtype=np.int16)
        assert got.shape == expected.shape
        assert np.abs(got - expected).max() <= 1, path.name


def test_fast_path_matches_the_v2_full_size_generator():
    """Resize upsampling (Upsample, conv, BatchNorm) and the x2 refiner fold and run channels-last too."""
    plain = trained_looking_generator(ngf=8, upsample="resize", output_scale=2)
    fast = optimise_for_inference(plain)
    assert not any(isinstance(layer, nn.BatchNorm2d) for layer in fast.modules())
    batch = example_batch(2)
    with torch.no_grad():
        expected, got = plain(batch), fast(batch)
    assert got.shape == expected.shape == (2, 3, 640, 512)
    assert (got - expected).abs().max().item() < 1e-4
