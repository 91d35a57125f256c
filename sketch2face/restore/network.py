"""A GFPGANv1Clean checkpoint -> the stock network: read it safely, work out its architecture.

Loading uses ``torch.load(weights_only=True)``; the architecture is read off the tensor shapes,
so smaller GFPGANv1Clean checkpoints load too.
"""

from __future__ import annotations

# Must run before anything imports torchvision (basicsr, facexlib and gfpgan all do).
from .. import _torchvision_compat  # noqa: F401  isort: skip

import contextlib
import re
from pathlib import Path
from typing import Any

import torch
from torch import nn

def _unwrap_state_dict(checkpoint: Any) -> dict[str, torch.Tensor]:
    if isinstance(checkpoint, dict):
        for key in ("params_ema", "params", "state_dict"):
            if isinstance(checkpoint.get(key), dict):
                checkpoint = checkpoint[key]
                break
    if not isinstance(checkpoint, dict) or not checkpoint or not all(isinstance(v, torch.Tensor) for v in checkpoint.values()):
        raise ValueError("it holds no state dict of tensors")
    return checkpoint


def _count(state_dict: dict[str, torch.Tensor], pattern: str) -> int:
    regex = re.compile(pattern)
    return len({match.group(1) for key in state_dict if (match := regex.fullmatch(key))})


def infer_config(state_dict: dict[str, torch.Tensor]) -> dict[str, Any]:
    """GFPGANv1Clean keyword arguments that reproduce these weights' tensor shapes.

    Only the shapes decide; ``input_is_latent`` (not visible in shapes) is True as in every
    released v1.2-v1.4 checkpoint. A wrong guess fails loudly in ``load_state_dict(strict=True)``.
    """
    try:
        num_down = _count(state_dict, r"conv_body_down\.(\d+)\.conv1\.weight")
        out_size = 2 ** (num_down + 2)
        decoder_base = state_dict["stylegan_decoder.constant_input.weight"].shape[1]  # int(512 * narrow)
        narrow = decoder_base / 512
        num_style_feat = state_dict["stylegan_decoder.style_conv1.modulated_conv.modulation.weight"].shape[1]
        channel_multiplier = 1
        if num_down >= 4:  # the 64 px level exists: its width is int(256 * multiplier * narrow)
            width_64 = state_dict["stylegan_decoder.style_convs.6.modulated_conv.weight"].shape[1]
            channel_multiplier = max(1, round(width_64 / (256 * narrow)))
        style_out = state_dict["final_linear.weight"].shape[0]
        scale_out = state_dict["condition_scale.0.2.weight"].shape[0]
        scale_in = state_dict["condition_scale.0.0.weight"].shape[0]
    except KeyError as error:
        raise ValueError(f"it is not a GFPGANv1Clean checkpoint (no {error.args[0]})") from None
    return {
        "out_size": out_size,
        "num_style_feat": num_style_feat,
        "channel_multiplier": channel_multiplier,
        "decoder_load_path": None,
        "fix_decoder": False,
        "num_mlp": _count(state_dict, r"stylegan_decoder\.style_mlp\.(\d+)\.weight"),
        "input_is_latent": True,
        "different_w": style_out != num_style_feat,
        "narrow": narrow,
        "sft_half": scale_out == scale_in,
    }


def build_gfpgan(config: dict[str, Any], device: str | torch.device | None = None) -> nn.Module:
    from gfpgan.archs.gfpganv1_clean_arch import GFPGANv1Clean

    with torch.device(device) if device is not None else contextlib.nullcontext():
        return GFPGANv1Clean(**config)


def _read_checkpoint(path: Path) -> Any:
    """torch.load(weights_only=True), memory-mapped when the file format allows it."""
    try:
        return torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except Exception:  # noqa: BLE001  legacy (non-zip) files can't be mapped: read them whole
        return torch.load(path, map_location="cpu", weights_only=True)


def load_gfpgan(path: Path, device: str | torch.device = "cpu") -> nn.Module:
    """Stock GFPGANv1Clean with the checkpoint's weights, in eval mode. Raises ValueError."""
    try:
        checkpoint = _read_checkpoint(path)
    except Exception as error:  # noqa: BLE001  untrusted bytes: any failure means "unreadable"
        # weights_only refuses pickled code (UnpicklingError); a truncated file fails to unzip.
        raise ValueError(f"it can't be read as a weights-only torch checkpoint ({str(error).splitlines()[0][:160]})") from None
    state_dict = _unwrap_state_dict(checkpoint)
    # Built on the meta device and given the loaded tensors: no random init of 86M parameters.
    network = build_gfpgan(infer_config(state_dict), device="meta")
    try:
        network.load_state_dict(state_dict, strict=True, assign=True)
    except RuntimeError as error:
        raise ValueError(f"its tensors don't fit GFPGANv1Clean ({str(error).splitlines()[0][:160]})") from None
    return network.to(device).eval()


def stock_forward(network: nn.Module, image: torch.Tensor) -> torch.Tensor:
    """GFPGANer's call (``return_rgb=False``) with the checkpoint's fixed noise, for comparison."""
    return network(image, return_rgb=False, randomize_noise=False)[0]

