"""sketch2face._torchvision_compat: torchvision (and so basicsr/gfpgan) importable with CPU torch."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

from sketch2face import _torchvision_compat as compat

REPO_ROOT = Path(__file__).resolve().parent.parent


def brute_force_nms(boxes: torch.Tensor, scores: torch.Tensor, threshold: float) -> list[int]:
    """Greedy NMS written out in plain Python floats: the reference semantics."""

    def iou(a, b):
        width = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
        height = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
        inter = width * height
        union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
        return inter / union

    rows = boxes.tolist()
    kept: list[int] = []
    for index in sorted(range(len(rows)), key=lambda i: -float(scores[i])):
        if all(iou(rows[index], rows[other]) <= threshold for other in kept):
            kept.append(index)
    return kept


def random_boxes(count: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    corners = torch.rand(count, 2, generator=generator) * 100
    sizes = torch.rand(count, 2, generator=generator) * 40 + 1
    boxes = torch.cat([corners, corners + sizes], dim=1)
    scores = torch.rand(count, generator=generator)  # continuous: no ties
    return boxes, scores


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("threshold", [0.0, 0.3, 0.7])
def test_pure_torch_nms_matches_brute_force(seed, threshold):
    boxes, scores = random_boxes(60 + 10 * seed, seed)
    expected = brute_force_nms(boxes, scores, threshold)
    kept = compat.nms_reference_kernel(boxes, scores, threshold)
    assert kept.dtype == torch.long
    assert kept.tolist() == expected
    # Whatever kernel is registered here (native or ours), the op and torchvision's API agree.
    import torchvision

    assert torch.ops.torchvision.nms(boxes, scores, threshold).tolist() == expected
    assert torchvision.ops.nms(boxes.double(), scores.double(), threshold).tolist() == expected


def test_nms_edge_cases():
    empty = compat.nms_reference_kernel(torch.empty(0, 4), torch.empty(0), 0.5)
    assert empty.shape == (0,) and empty.dtype == torch.long
    same = torch.tensor([[0.0, 0.0, 10.0, 10.0]] * 3)
    assert compat.nms_reference_kernel(same, torch.tensor([0.2, 0.9, 0.5]), 0.5).tolist() == [1]
    with pytest.raises(RuntimeError, match="shape"):
        compat.nms_reference_kernel(torch.zeros(3, 5), torch.zeros(3), 0.5)


@pytest.mark.filterwarnings("ignore:.*quantize_per_tensor.*deprecated:UserWarning")
def test_quantized_boxes_go_through_qnms():
    import torchvision

    boxes, _ = random_boxes(40, 11)  # coordinates < 141: fit quint8 at scale 1
    scores = torch.randperm(40, generator=torch.Generator().manual_seed(11)).float() / 40  # distinct
    quantized_boxes = torch.quantize_per_tensor(boxes, 1.0, 0, torch.quint8)
    quantized_scores = torch.quantize_per_tensor(scores, 1 / 40, 0, torch.quint8)
    expected = brute_force_nms(quantized_boxes.dequantize(), quantized_scores.dequantize(), 0.4)
    assert torchvision.ops.nms(quantized_boxes, quantized_scores, 0.4).tolist() == expected


def test_install_is_idempotent_and_basicsr_imports():
    library_before = compat._fallback_library
    assert compat.install() == (library_before is not None)
    assert compat.install() == (library_before is not None)
    assert compat._fallback_library is library_before
    assert compat.op_exists("torchvision::nms") and compat.op_exists("torchvision::qnms")

    import torchvision.transforms._functional_tensor as renamed
    from basicsr.data.degradations import rgb_to_grayscale  # the old module name basicsr uses

    assert sys.modules["torchvision.transforms.functional_tensor"] is renamed
    assert rgb_to_grayscale is renamed.rgb_to_grayscale


def run_fresh_python(code: str) -> str:
    """Run ``code`` in a new interpreter (the compat module acts at import, once per process)."""
    env = dict(os.environ, PYTHONPATH=str(REPO_ROOT), OMP_NUM_THREADS="1")
    result = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, env=env, timeout=240, cwd=REPO_ROOT
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout


def test_working_native_extension_is_left_alone():
    # Simulate a torchvision whose compiled extension loads: "loading" it registers a native
    # nms (here one that returns a sentinel). The compat module must not touch the ops.
    output = run_fresh_python(
        """
        import torch

        native = torch.library.Library("torchvision", "DEF")
        loaded = []
        def fake_load_library(path):  # like dlopen: registers once, however often it is called
            if loaded:
                return
            loaded.append(path)
            native.define("nms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor")
            native.define("qnms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor")
            native.impl("nms", lambda d, s, t: torch.full((1,), 4242, dtype=torch.long), "CPU")
            native.impl("qnms", lambda d, s, t: torch.full((1,), 4343, dtype=torch.long), "CPU")
        torch.ops.load_library = fake_load_library

        import sketch2face._torchvision_compat as compat
        assert compat._fallback_library is None, "defined fallback ops over a native extension"
        assert compat.install() is False
        boxes = torch.tensor([[0.0, 0.0, 1.0, 1.0]])
        print(torch.ops.torchvision.nms(boxes, torch.ones(1), 0.5).item())
        """
    )
    assert output.split() == ["4242"]


def test_missing_native_extension_gets_the_fallback():
    output = run_fresh_python(
        """
        import torch

        def broken_load_library(path):
            raise OSError(f"Could not load this library: {path}")
        torch.ops.load_library = broken_load_library

        import sketch2face._torchvision_compat as compat
        assert compat._fallback_library is not None
        import torchvision, torchvision.ops
        import torchvision.transforms.functional_tensor as old_name
        import torchvision.transforms._functional_tensor as new_name
        assert old_name is new_name
        boxes = torch.tensor([[0.0, 0.0, 10.0, 10.0], [1.0, 1.0, 11.0, 11.0], [50.0, 50.0, 60.0, 60.0]])
        print(torchvision.ops.nms(boxes, torch.tensor([0.9, 0.8, 0.7]), 0.5).tolist())
        from gfpgan.archs.gfpganv1_clean_arch import GFPGANv1Clean
        print(GFPGANv1Clean.__name__)
        """
    )
    assert output.split("\n")[:2] == ["[0, 2]", "GFPGANv1Clean"]
