"""Small, real, randomly initialised torch networks with the call signatures of the two frozen
loss networks (darknet-tiny's ``features`` and SFace's ``identity_embedding``), so the loss
plumbing is tested without the ported weights. They are frozen, as the real ones are in training."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def _frozen(network: nn.Module) -> nn.Module:
    for parameter in network.parameters():
        parameter.requires_grad_(False)
    return network.eval()


class SmallFeatureNetwork(nn.Module):
    """Two stride-2 conv + ReLU blocks; ``features(rgb)`` returns both activations."""

    def __init__(self):
        super().__init__()
        self.first = nn.Sequential(nn.Conv2d(3, 8, 3, stride=2, padding=1), nn.ReLU())
        self.second = nn.Sequential(nn.Conv2d(8, 16, 3, stride=2, padding=1), nn.ReLU())
        _frozen(self)

    def features(self, rgb: torch.Tensor) -> list[torch.Tensor]:
        first = self.first(rgb)
        return [first, self.second(first)]


class SmallFaceEmbedder(nn.Module):
    """``identity_embedding(rgb, five_points)``: crops the square around the five points
    (differentiably, with grid_sample), then a small conv net and a unit-length 16-d embedding."""

    def __init__(self, crop: int = 32):
        super().__init__()
        self.crop = crop
        self.network = nn.Sequential(
            nn.Conv2d(3, 16, 3, stride=2, padding=1), nn.ReLU(),
            nn.Conv2d(16, 32, 3, stride=2, padding=1), nn.ReLU(),
            nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(32, 16),
        )
        _frozen(self)

    def identity_embedding(self, rgb: torch.Tensor, five_points: torch.Tensor) -> torch.Tensor:
        count, _, height, width = rgb.shape
        low, high = five_points.amin(1), five_points.amax(1)
        centre, half = (low + high) / 2, (high - low).amax(1) * 0.8 + 1.0
        theta = torch.zeros(count, 2, 3, dtype=rgb.dtype, device=rgb.device)
        theta[:, 0, 0], theta[:, 1, 1] = 2 * half / width, 2 * half / height
        theta[:, 0, 2], theta[:, 1, 2] = 2 * centre[:, 0] / width - 1, 2 * centre[:, 1] / height - 1
        grid = F.affine_grid(theta, (count, 3, self.crop, self.crop), align_corners=False)
        return F.normalize(self.network(F.grid_sample(rgb, grid, align_corners=False)), dim=1)
