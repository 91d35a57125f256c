"""Start a resize-upsampling U-Net from a trained transposed-convolution one (stage 4).

A transposed 4x4 convolution with stride 2 is a linear map from its kernel to the image it paints;
so is a bilinear x2 resize followed by a 3x3 convolution. For every kernel tap we record each
one's response to a single lit pixel, and solve once, by least squares, for the 3x3 kernel whose
response is closest to a given 4x4 one. Applied to every (input, output) channel pair, that turns a
trained decoder into a resize decoder that paints nearly the same face. What the fit cannot
express is exactly the part that differs between the four output phases, i.e. the checkerboard.
Fine-tuning then repairs the rest in far fewer steps than training from scratch.

:func:`balance_output_phases` keeps a transposed generator but takes the grid out of its last
layer: where the features are flat (paper, skin, background) the output is then flat too.
"""

from __future__ import annotations

from functools import lru_cache

import torch
import torch.nn.functional as F

from ..networks import UNetGenerator


@lru_cache(maxsize=1)
def _projection() -> torch.Tensor:
    """(16, 9): maps a flattened 4x4 transposed kernel to the closest flattened 3x3 resize kernel."""
    impulse = torch.zeros(1, 1, 7, 7, dtype=torch.float64)
    impulse[0, 0, 3, 3] = 1.0
    resized = F.interpolate(impulse, scale_factor=2, mode="bilinear", align_corners=False)
    resize_responses = torch.stack([F.conv2d(resized, _one_hot(tap, 3), padding=1).flatten() for tap in range(9)], dim=1)
    transposed_responses = torch.stack(
        [F.conv_transpose2d(impulse, _one_hot(tap, 4), stride=2, padding=1).flatten() for tap in range(16)], dim=1)
    return torch.linalg.lstsq(resize_responses, transposed_responses).solution.T  # (16, 9)


def _one_hot(tap: int, size: int) -> torch.Tensor:
    kernel = torch.zeros(size * size, dtype=torch.float64)
    kernel[tap] = 1.0
    return kernel.view(1, 1, size, size)


def resize_kernel(transposed_weight: torch.Tensor) -> torch.Tensor:
    """ConvTranspose2d weight (in, out, 4, 4) -> Conv2d weight (out, in, 3, 3) for bilinear x2 + conv."""
    channels_in, channels_out = transposed_weight.shape[:2]
    flat = transposed_weight.detach().double().reshape(channels_in, channels_out, 16)
    fitted = (flat @ _projection()).reshape(channels_in, channels_out, 3, 3)
    return fitted.permute(1, 0, 2, 3).to(transposed_weight.dtype).contiguous()


def resize_generator_from(transposed: UNetGenerator) -> UNetGenerator:
    """A ``upsample="resize"`` copy of a ``"transposed"`` generator with output_scale 1: the
    encoder, norms and biases as they are, every upsampling kernel fitted by :func:`resize_kernel`."""
    if transposed.upsample != "transposed" or transposed.output_scale != 1:
        raise ValueError("needs a generator with upsample='transposed' and output_scale=1")
    # The mixin keeps the constructor's arguments (what save_pretrained writes to config.json).
    resized = UNetGenerator(**{**transposed._hub_mixin_config, "upsample": "resize"})
    source = transposed.state_dict()
    state = {}
    for name in resized.state_dict():
        parts = name.split(".")
        upsampling_block = parts[0] in ("decoder", "to_image")
        if upsampling_block:  # an nn.Upsample leads each resize block, shifting its layers' indices by one
            index = 2 if parts[0] == "decoder" else 1
            parts[index] = str(int(parts[index]) - 1)
        original = source[".".join(parts)]
        is_upsampling_kernel = upsampling_block and original.dim() == 4  # the rest there is norms and biases
        state[name] = resize_kernel(original) if is_upsampling_kernel else original
    resized.load_state_dict(state)
    return resized


def _phase_masks() -> torch.Tensor:
    """(4, 4, 4): which taps of a 4x4, stride-2, padding-1 transposed kernel paint each of the four
    output phases. Even output rows take kernel rows 1 and 3, odd ones rows 0 and 2; columns alike."""
    rows_of = {0: (1, 3), 1: (0, 2)}
    masks = torch.zeros(4, 4, 4)
    for phase, (row_phase, column_phase) in enumerate(((0, 0), (0, 1), (1, 0), (1, 1))):
        for row in rows_of[row_phase]:
            for column in rows_of[column_phase]:
                masks[phase, row, column] = 1.0
    return masks


def balanced_phase_kernel(weight: torch.Tensor) -> torch.Tensor:
    """ConvTranspose2d weight (in, out, 4, 4) -> the nearest one (least squares) whose four output
    phases have the same tap sum for every (in, out) channel pair. A flat input then paints a flat
    output: the period-2 checkerboard of uneven kernel overlap (Odena et al. 2016) is gone there.
    Each phase's four taps move by the same amount, the only way to fix a sum at the least change."""
    if weight.shape[2:] != (4, 4):
        raise ValueError(f"expected a 4x4 transposed kernel (in, out, 4, 4), got {tuple(weight.shape)}")
    masks = _phase_masks().to(weight)
    sums = torch.einsum("iokl,pkl->iop", weight, masks)
    excess = sums - sums.mean(dim=2, keepdim=True)
    return weight - torch.einsum("iop,pkl->iokl", excess / 4.0, masks)


def balance_output_phases(generator: UNetGenerator) -> None:
    """Make the last (image-painting) transposed convolution phase-balanced, in place. Fine-tunes
    of stage 4 grow the grid wherever their features shift; with this layer balanced after every
    step a shift can't paint it at period 2. On stage 4 itself it changes the canvas faces by
    about 1 grey level in 255 (docs/training.md)."""
    layer = generator.to_image[0]
    if not isinstance(layer, torch.nn.ConvTranspose2d) or layer.stride != (2, 2) or layer.padding != (1, 1):
        raise ValueError("balancing the output phases needs a generator with upsample='transposed' and output_scale=1")
    with torch.no_grad():
        layer.weight.copy_(balanced_phase_kernel(layer.weight))
