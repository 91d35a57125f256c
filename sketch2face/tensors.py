"""The one conversion between images and the networks' tensors in [-1, 1].

The generator and GFPGAN both work on float tensors in [-1, 1]; images are uint8 RGB
(H, W, 3) or float greyscale (H, W) in [0, 1] with 1 = white paper.
"""

from __future__ import annotations

import numpy as np
import torch


def image_to_tensor(image: np.ndarray) -> torch.Tensor:
    """uint8 RGB (H, W, 3) or float grey (H, W) in [0, 1] -> float32 (C, H, W) in [-1, 1]."""
    if image.ndim == 2:
        return torch.from_numpy(np.ascontiguousarray(image, dtype=np.float32) * 2.0 - 1.0)[None]
    if image.dtype != np.uint8 or image.ndim != 3:
        raise ValueError(f"expected uint8 (H, W, C) or float (H, W), got {image.dtype} {image.shape}")
    return (torch.from_numpy(image.astype(np.float32) / 127.5 - 1.0)).permute(2, 0, 1).contiguous()


def tensor_to_image(tensor: torch.Tensor) -> np.ndarray:
    """float (C, H, W) or (1, C, H, W) in [-1, 1] -> uint8 (H, W, C), values clamped and rounded."""
    if tensor.dim() == 4:
        if tensor.size(0) != 1:
            raise ValueError(f"expected one image, got a batch of {tensor.size(0)}")
        tensor = tensor[0]
    image = ((tensor.detach().clamp(-1.0, 1.0) + 1.0) * 127.5).round().to(torch.uint8)
    return image.permute(1, 2, 0).cpu().numpy()
