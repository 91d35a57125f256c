"""Shift averaging keeps what follows the drawing and cancels a pattern fixed to the stride lattice."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from sketch2face import Sketch2Face, preprocess
from sketch2face.fastpath import LINE_DRAWING_SHIFTS, SHADED_SKETCH_SHIFTS, ShiftAveraged
from sketch2face.training import evaluate
from tests.test_fastpath import REPO_ROOT, example_batch


class CircularBlur(nn.Module):
    """Shift-equivariant: a fixed 3x3 convolution with wrap-around padding (like the averaging's roll)."""

    def __init__(self, upscale: int = 1):
        super().__init__()
        torch.manual_seed(1)
        self.kernel = torch.rand(3, 1, 3, 3)
        self.upscale = upscale

    def forward(self, sketch: torch.Tensor) -> torch.Tensor:
        face = nn.functional.conv2d(nn.functional.pad(sketch, (1, 1, 1, 1), mode="circular"), self.kernel)
        return nn.functional.interpolate(face, scale_factor=self.upscale, mode="nearest") if self.upscale > 1 else face


class WithLatticePattern(nn.Module):
    """An equivariant network plus a pattern that stays put when the input moves, as a transposed decoder's grid does."""

    def __init__(self, network: nn.Module, pattern: torch.Tensor):
        super().__init__()
        self.network, self.pattern = network, pattern

    def forward(self, sketch: torch.Tensor) -> torch.Tensor:
        return self.network(sketch) + self.pattern


def lattice(height: int, width: int, period_y: int, period_x: int) -> torch.Tensor:
    rows = torch.cos(2 * torch.pi * torch.arange(height) / period_y) if period_y else torch.ones(height)
    columns = torch.cos(2 * torch.pi * torch.arange(width) / period_x) if period_x else torch.ones(width)
    return (rows[:, None] * columns[None, :]).expand(1, 3, height, width)


def test_an_equivariant_network_is_left_as_it_is():
    batch = example_batch(2)
    network = CircularBlur()
    with torch.no_grad():
        assert torch.allclose(ShiftAveraged(network)(batch), network(batch), atol=1e-5)


def test_an_output_twice_the_input_size_is_rolled_back_twice_as_far():
    batch = example_batch(1)
    network = CircularBlur(upscale=2)
    with torch.no_grad():
        averaged = ShiftAveraged(network)(batch)
    assert averaged.shape[-2:] == (2 * batch.shape[-2], 2 * batch.shape[-1])
    assert torch.allclose(averaged, network(batch), atol=1e-5)


UNIT_SQUARE = ((0, 0), (0, 1), (1, 0), (1, 1))
# What each shift set leaves of a unit lattice pattern (periods in y and x, 0 = flat): the mean of
# its phases over the shifts. The pair leaves the diagonal period-2 checker whole and cancels the
# period-2 stripes; the line-drawing set cancels every period-2 pattern.
LEFT_OF_A_UNIT_PATTERN = [
    (SHADED_SKETCH_SHIFTS, {(2, 0): 0.0, (0, 2): 0.0, (2, 2): 1.0, (4, 4): 0.5, (4, 0): 0.5, (8, 8): 0.75, (8, 0): 0.854}),
    (LINE_DRAWING_SHIFTS, {(2, 0): 0.0, (0, 2): 0.0, (2, 2): 0.0, (4, 4): 0.25, (4, 0): 0.5, (0, 4): 0.0,
                           (8, 8): 0.125, (8, 0): 0.354}),
    (UNIT_SQUARE, {(2, 2): 0.0, (2, 0): 0.0, (4, 0): 0.5}),
]


@pytest.mark.parametrize("shifts, left_by_periods", LEFT_OF_A_UNIT_PATTERN)
def test_a_lattice_pattern_keeps_only_what_its_phases_leave(shifts, left_by_periods):
    batch = example_batch(1)
    height, width = batch.shape[-2:]
    network = CircularBlur()
    with torch.no_grad():
        clean = network(batch)
        for periods, left in left_by_periods.items():
            pattern = lattice(height, width, *periods)
            averaged = ShiftAveraged(WithLatticePattern(network, pattern), shifts=shifts)(batch)
            assert (averaged - clean).abs().max().item() == pytest.approx(left, abs=2e-3), periods


def test_each_drawing_in_a_batch_keeps_its_own_face():
    batch = example_batch(3)
    network = WithLatticePattern(CircularBlur(), 0.3 * lattice(*batch.shape[-2:], 2, 0))
    averaged = ShiftAveraged(network)
    with torch.no_grad():
        together = averaged(batch)
        for index in range(batch.size(0)):
            assert torch.allclose(together[index : index + 1], averaged(batch[index : index + 1]), atol=1e-5)


def test_it_needs_a_shift():
    with pytest.raises(ValueError):
        ShiftAveraged(CircularBlur(), shifts=())


@pytest.mark.parametrize("shifts", [SHADED_SKETCH_SHIFTS, LINE_DRAWING_SHIFTS])
def test_the_shifts_are_distinct_and_start_at_the_drawing_itself(shifts):
    assert shifts[0] == (0, 0) and len(set(shifts)) == len(shifts)


@pytest.fixture(scope="module")
def served_pair():
    return Sketch2Face.from_pretrained(upscale=False, shift_average=False), Sketch2Face.from_pretrained(upscale=False)


def test_the_shipped_generator_paints_less_checkerboard_when_shift_averaged(served_pair):
    plain, averaged = served_pair
    assert averaged.shift_average and not plain.shift_average
    before, after, moved = [], [], []
    for path in sorted((REPO_ROOT / "examples").glob("*.png")):
        canvas = preprocess.normalise(path).canvas
        face, smoothed = plain.generate_canvas(canvas), averaged.generate_canvas(canvas)
        assert smoothed.shape == face.shape and smoothed.dtype == np.uint8
        before.append(evaluate.checkerboard_peaks(face))
        after.append(evaluate.checkerboard_peaks(smoothed))
        moved.append(np.abs(face.astype(float) - smoothed).mean())
    assert np.mean(after) < 0.9 * np.mean(before), (before, after)
    # The same face, not another one: a few grey levels on average.
    assert max(moved) < 12, moved


def test_a_resize_decoder_is_not_averaged(tiny_model_dir):
    from sketch2face.pipeline import load_generator
    from sketch2face.networks import UNetGenerator

    resize = UNetGenerator(ngf=8, num_downs=6, upsample="resize")
    assert not Sketch2Face(resize, shift_average=True).shift_average
    assert Sketch2Face(load_generator(tiny_model_dir), shift_average=True).shift_average


def test_the_evaluation_runs_each_model_in_each_mode():
    assert evaluate.variants(["a", "b"], evaluate.SHIFT_AVERAGE_MODES["both"]) == [
        ("a", False), ("a", True), ("b", False), ("b", True)]
    assert evaluate.variant_name("a", True, (False, True)) == "a (shift-averaged)"
    assert evaluate.variant_name("a", True, (True,)) == "a"
    with pytest.raises(SystemExit):
        evaluate.main(["--shift-average", "both"])


def shaded_sketch() -> np.ndarray:
    """The test face with pencil-like shading: grey tones over the head, darker down one side."""
    from tests.drawings import drawing

    lines = np.asarray(drawing(), dtype=np.float32) / 255
    height, width = lines.shape
    ys, xs = np.mgrid[0:height, 0:width]
    head = ((xs - 0.5 * width) / (0.3 * width)) ** 2 + ((ys - 0.475 * height) / (0.375 * height)) ** 2 < 1
    tone = 0.45 + 0.35 * xs / width + 0.05 * np.sin(ys / 3.0)
    return np.where(head, np.minimum(lines, tone), lines).astype(np.float32)


def test_line_drawings_and_shaded_sketches_are_told_apart():
    from tests.drawings import drawing

    for path in sorted((REPO_ROOT / "examples").glob("*.png")):
        assert preprocess.is_line_drawing(preprocess.normalise(path).canvas), path.name
    assert preprocess.is_line_drawing(preprocess.normalise(drawing()).canvas)
    assert not preprocess.is_line_drawing(preprocess.normalise(shaded_sketch()).canvas)
    assert preprocess.is_line_drawing(np.ones((320, 256), np.float32))  # nothing drawn: no shading to keep


def test_each_kind_of_drawing_gets_its_own_shifts(served_pair):
    from sketch2face.fastpath import optimise_for_inference

    plain, averaged = served_pair
    line_network = optimise_for_inference(plain.generator)
    shaded_network = optimise_for_inference(plain.shaded_sketch_generator or plain.generator)
    for sketch, fast, shifts in (
            (preprocess.normalise(REPO_ROOT / "examples" / "01_short_hair.png").canvas, line_network, LINE_DRAWING_SHIFTS),
            (preprocess.normalise(shaded_sketch()).canvas, shaded_network, SHADED_SKETCH_SHIFTS)):
        with torch.inference_mode():
            expected = ShiftAveraged(fast, shifts)(torch.from_numpy(sketch * 2.0 - 1.0)[None, None])
        expected_face = ((expected[0].clamp(-1, 1) + 1) * 127.5).round().permute(1, 2, 0).numpy()
        assert np.abs(averaged.generate_canvas(sketch).astype(float) - expected_face).max() <= 1
