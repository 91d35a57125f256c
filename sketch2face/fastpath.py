"""Inference-only rewrite of the generator for CPU serving.

    from sketch2face.fastpath import optimise_for_inference
    fast = optimise_for_inference(generator)        # same outputs (|diff| ~1e-6), less time

What it does, all exact up to float rounding:

- folds every eval-mode BatchNorm into the convolution (or transposed convolution) before it,
  so its scale and shift cost nothing;
- drops Dropout, which is the identity in eval mode;
- keeps weights and activations channels-last (NHWC): oneDNN's convolutions, transposed ones
  above all, run much faster on CPU in that layout than in NCHW.

Measured on the 2-core CPU this project serves from (``python -m benchmarks``): 23 ms
instead of 30 ms per 256x320 face, outputs within 5e-6 of the plain model. Tried and left out
(docs/benchmark.md): bfloat16 autocast, 4x slower (this CPU has no avx512_bf16/AMX, so it is
emulated); TorchScript freeze + optimize_for_inference, slower than this; ``torch.compile``
(inductor, freezing), 21 ms but 12 s of compiling at start-up.

:class:`ShiftAveraged` is not exact: it averages the generator over a few whole-pixel shifts of
its input, which cancels the checkerboard that transposed convolutions paint on a lattice fixed
to the image (docs/training.md, "Shift averaging at serving time").
"""

from __future__ import annotations

import copy

import torch
from torch import nn
from torch.nn.utils import fuse_conv_bn_eval

from .networks import UNetGenerator


def fold_batchnorm(module: nn.Module) -> nn.Module:
    """A copy of ``module`` in which every Sequential's (conv, BatchNorm) pair is one conv and
    Dropout is gone. Only valid for inference (eval-mode statistics)."""
    module = copy.deepcopy(module).eval()
    for sequential in [child for child in module.modules() if isinstance(child, nn.Sequential)]:
        layers = list(sequential)
        kept: list[nn.Module] = []
        for layer in layers:
            if isinstance(layer, nn.BatchNorm2d) and kept and isinstance(kept[-1], (nn.Conv2d, nn.ConvTranspose2d)):
                if layer.running_mean is None or layer.running_var is None:
                    raise ValueError("BatchNorm without running statistics can't be folded")
                kept[-1] = fuse_conv_bn_eval(kept[-1], layer, transpose=isinstance(kept[-1], nn.ConvTranspose2d))
            elif isinstance(layer, nn.Dropout):
                continue
            else:
                kept.append(layer)
        if len(kept) != len(layers):
            for name in list(sequential._modules):
                del sequential._modules[name]
            for index, layer in enumerate(kept):
                sequential.add_module(str(index), layer)
    return module


class FastGenerator(nn.Module):
    """Wraps the folded, channels-last network; takes and returns ordinary NCHW tensors."""

    def __init__(self, network: nn.Module, channels_last: bool = True):
        super().__init__()
        self.network = network
        self.channels_last = channels_last
        # What callers read off a UNetGenerator.
        for name in ("in_channels", "num_downs", "canvas_size"):
            if hasattr(network, name):
                setattr(self, name, getattr(network, name))

    def forward(self, sketch: torch.Tensor) -> torch.Tensor:
        if self.channels_last:
            sketch = sketch.contiguous(memory_format=torch.channels_last)
        return self.network(sketch).contiguous()


def optimise_for_inference(generator: UNetGenerator | nn.Module, channels_last: bool = True) -> FastGenerator:
    """An inference-only copy of ``generator``: BatchNorm folded, Dropout removed, NHWC.

    The original is left untouched. The result has no gradients and must not be trained.
    """
    network = fold_batchnorm(generator)
    for parameter in network.parameters():
        parameter.requires_grad_(False)
    if channels_last:
        network = network.to(memory_format=torch.channels_last)
    return FastGenerator(network, channels_last).eval()


# Shaded sketches: one diagonal pixel. It cancels the period-2 stripes in x and in y, most of the
# finest grid. Wider shifts cancel more, but they also move the U-Net's coarse levels, whose faces
# then disagree in the eyes and mouth, and on a shaded sketch the mean loses likeness.
SHADED_SKETCH_SHIFTS = ((0, 0), (1, 1))
# Line drawings, which carry little likeness to lose: the four shifts whose phases cancel the
# period-2 components exactly and leave about 0.30 and 0.22 of the period-4 and period-8 ones (the
# best four among shifts 0-7, by brute force over the frequencies evaluate.checkerboard_peaks reads).
LINE_DRAWING_SHIFTS = ((0, 0), (1, 3), (3, 6), (4, 1))


class ShiftAveraged(nn.Module):
    """The mean of ``network(roll(x, s))`` rolled back by ``s``, over ``shifts``: what follows the
    drawing stays, a pattern fixed to the network's stride lattice averages out. Rolling wraps the
    canvas's paper border round, so no pixel loses a pass. The shifted copies run as one batch."""

    def __init__(self, network: nn.Module, shifts: tuple[tuple[int, int], ...] = SHADED_SKETCH_SHIFTS):
        super().__init__()
        if not shifts:
            raise ValueError("ShiftAveraged needs at least one shift")
        self.network = network
        self.shifts = tuple((int(dy), int(dx)) for dy, dx in shifts)

    def forward(self, sketch: torch.Tensor) -> torch.Tensor:
        shifted = torch.cat([torch.roll(sketch, shift, dims=(2, 3)) for shift in self.shifts])
        faces = self.network(shifted).split(sketch.size(0))
        return sum(roll_back(face, shift, sketch) for face, shift in zip(faces, self.shifts)) / len(self.shifts)


def roll_back(face: torch.Tensor, shift: tuple[int, int], sketch: torch.Tensor) -> torch.Tensor:
    """``face``, made from ``sketch`` rolled by ``shift`` = (dy, dx), rolled back into the sketch's
    place. A face k times the sketch's size moved k pixels for each pixel of the sketch."""
    scale = face.size(-1) // sketch.size(-1)
    return torch.roll(face, (-shift[0] * scale, -shift[1] * scale), dims=(2, 3))
