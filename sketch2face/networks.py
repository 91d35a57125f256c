"""pix2pix networks (Isola et al., 2017), shared by training and inference.

- :class:`UNetGenerator`: encoder-decoder with a skip connection from every encoder level to
  the decoder level of the same size. It loads and saves through huggingface_hub's
  ``PyTorchModelHubMixin`` (config.json + model.safetensors).
- :class:`PatchDiscriminator`: conditional 70x70 PatchGAN; it judges (sketch, photo) pairs
  patch by patch.
- :class:`GANLoss`: the adversarial term of the pix2pix objective.
"""

from __future__ import annotations

import torch
from huggingface_hub import PyTorchModelHubMixin
from torch import nn


def _down(in_channels: int, out_channels: int, normalise: bool = True) -> nn.Sequential:
    layers: list[nn.Module] = [nn.Conv2d(in_channels, out_channels, 4, stride=2, padding=1, bias=not normalise)]
    if normalise:
        layers.append(nn.BatchNorm2d(out_channels))
    layers.append(nn.LeakyReLU(0.2, inplace=True))
    return nn.Sequential(*layers)


def _up(in_channels: int, out_channels: int, dropout: bool) -> nn.Sequential:
    layers: list[nn.Module] = [
        nn.ConvTranspose2d(in_channels, out_channels, 4, stride=2, padding=1, bias=False),
        nn.BatchNorm2d(out_channels),
    ]
    if dropout:
        layers.append(nn.Dropout(0.5))
    layers.append(nn.ReLU(inplace=True))
    return nn.Sequential(*layers)


class UNetGenerator(
    nn.Module,
    PyTorchModelHubMixin,
    library_name="sketch2face",
    repo_url="https://github.com/sketch2face/sketch2face",
    tags=["pix2pix", "image-to-image", "sketch-to-face"],
    license="mit",
):
    """U-Net generator: ``num_downs`` stride-2 levels, widths ngf * (1, 2, 4, 8, 8, ...).

    Inputs are sketches in [-1, 1] (1 channel); outputs are photos in [-1, 1] (3 channels).
    Height and width must be multiples of 2**num_downs.
    """

    def __init__(
        self,
        in_channels: int = 1,
        out_channels: int = 3,
        ngf: int = 32,
        num_downs: int = 6,
        dropout_levels: int = 3,
        canvas_size: tuple[int, int] = (256, 320),
    ):
        super().__init__()
        self.in_channels = in_channels
        self.num_downs = num_downs
        self.canvas_size = tuple(canvas_size)
        widths = [ngf * min(2**level, 8) for level in range(num_downs)]

        self.encoder = nn.ModuleList()
        previous = in_channels
        for level, width in enumerate(widths):
            # No norm on the first level (pix2pix) nor on the 1-pixel-ish bottleneck.
            normalise = 0 < level < num_downs - 1
            self.encoder.append(_down(previous, width, normalise))
            previous = width

        self.decoder = nn.ModuleList()
        for level in reversed(range(1, num_downs)):
            incoming = widths[level] if level == num_downs - 1 else widths[level] * 2
            dropout = level >= num_downs - dropout_levels
            self.decoder.append(_up(incoming, widths[level - 1], dropout))
        self.to_image = nn.Sequential(
            nn.ConvTranspose2d(widths[0] * 2, out_channels, 4, stride=2, padding=1),
            nn.Tanh(),
        )

    def forward(self, sketch: torch.Tensor) -> torch.Tensor:
        skips = []
        features = sketch
        for block in self.encoder:
            features = block(features)
            skips.append(features)
        features = skips.pop()  # the bottleneck has no skip partner
        for block in self.decoder:
            features = block(features)
            features = torch.cat([features, skips.pop()], dim=1)
        return self.to_image(features)


class PatchDiscriminator(nn.Module):
    """Conditional PatchGAN: C64-C128-C256-C512 (scaled by ndf/64), 70x70 receptive field.

    It sees the sketch and the photo stacked along channels, so it can judge whether the
    photo *matches* the sketch, not only whether it looks real.
    """

    def __init__(self, sketch_channels: int = 1, photo_channels: int = 3, ndf: int = 64):
        super().__init__()
        channels = [sketch_channels + photo_channels, ndf, ndf * 2, ndf * 4, ndf * 8]
        layers: list[nn.Module] = []
        for index in range(4):
            stride = 2 if index < 3 else 1
            layers.append(nn.Conv2d(channels[index], channels[index + 1], 4, stride=stride, padding=1, bias=index == 0))
            if index > 0:
                layers.append(nn.BatchNorm2d(channels[index + 1]))
            layers.append(nn.LeakyReLU(0.2, inplace=True))
        layers.append(nn.Conv2d(channels[-1], 1, 4, stride=1, padding=1))  # one logit per patch
        self.model = nn.Sequential(*layers)

    def forward(self, sketch: torch.Tensor, photo: torch.Tensor) -> torch.Tensor:
        return self.model(torch.cat([sketch, photo], dim=1))


class GANLoss(nn.Module):
    """Vanilla (cross-entropy) GAN loss against an all-real or all-fake patch map."""

    def __init__(self):
        super().__init__()
        self.criterion = nn.BCEWithLogitsLoss()

    def forward(self, patch_logits: torch.Tensor, target_is_real: bool) -> torch.Tensor:
        target = torch.ones_like(patch_logits) if target_is_real else torch.zeros_like(patch_logits)
        return self.criterion(patch_logits, target)


def init_weights(module: nn.Module, gain: float = 0.02) -> None:
    """pix2pix initialisation: N(0, 0.02) convolutions, N(1, 0.02) norm scales."""
    for layer in module.modules():
        if isinstance(layer, (nn.Conv2d, nn.ConvTranspose2d)):
            nn.init.normal_(layer.weight, 0.0, gain)
            if layer.bias is not None:
                nn.init.zeros_(layer.bias)
        elif isinstance(layer, nn.BatchNorm2d):
            nn.init.normal_(layer.weight, 1.0, gain)
            nn.init.zeros_(layer.bias)


def count_parameters(module: nn.Module) -> int:
    return sum(parameter.numel() for parameter in module.parameters())
