"""pix2pix networks (Isola et al., 2017), shared by training and inference.

- :class:`UNetGenerator`: encoder-decoder with a skip connection from every encoder level to
  the decoder level of the same size. It loads and saves through huggingface_hub's
  ``PyTorchModelHubMixin`` (config.json + model.safetensors). Two options, both off in an old
  config.json (a missing key means the original network):
  ``upsample="resize"`` doubles the size by bilinear resizing and then a 3x3 convolution instead
  of a transposed convolution, whose uneven kernel overlap paints a checkerboard (Odena et al.,
  "Deconvolution and Checkerboard Artifacts", Distill 2016); ``output_scale=2`` adds a small
  refiner after the U-Net that returns the face at twice the canvas size (512x640).
- :class:`PatchDiscriminator`: conditional 70x70 PatchGAN; it judges (sketch, photo) pairs
  patch by patch. :class:`MultiScalePatchDiscriminator` runs one per image scale (pix2pixHD);
  both hand out their intermediate features for feature matching.
- :class:`GANLoss`: the adversarial term of the pix2pix objective.
- :class:`FaceUpscaler`: the stage after the generator, a small x2 super-resolution network
  trained on full-resolution photos alone: the 256x320 face becomes a 512x640 one.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from huggingface_hub import PyTorchModelHubMixin
from torch import nn

UPSAMPLING = ("transposed", "resize")
OUTPUT_SCALES = (1, 2)


def _down(in_channels: int, out_channels: int, normalise: bool = True) -> nn.Sequential:
    layers: list[nn.Module] = [nn.Conv2d(in_channels, out_channels, 4, stride=2, padding=1, bias=not normalise)]
    if normalise:
        layers.append(nn.BatchNorm2d(out_channels))
    layers.append(nn.LeakyReLU(0.2, inplace=True))
    return nn.Sequential(*layers)


def _upsample_conv(in_channels: int, out_channels: int, upsample: str, bias: bool) -> list[nn.Module]:
    """x2 in each direction: a transposed 4x4 convolution, or a bilinear resize then a 3x3 convolution."""
    if upsample == "transposed":
        return [nn.ConvTranspose2d(in_channels, out_channels, 4, stride=2, padding=1, bias=bias)]
    return [nn.Upsample(scale_factor=2, mode="bilinear", align_corners=False),
            nn.Conv2d(in_channels, out_channels, 3, padding=1, bias=bias)]


def _up(in_channels: int, out_channels: int, dropout: bool, upsample: str = "transposed") -> nn.Sequential:
    layers: list[nn.Module] = [
        *_upsample_conv(in_channels, out_channels, upsample, bias=False),
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

    Inputs are sketches in [-1, 1] (1 channel); outputs are photos in [-1, 1] (3 channels),
    ``output_scale`` times the input's height and width. Height and width must be multiples of
    2**num_downs.

    ``upsample``: "transposed" (pix2pix's transposed convolutions) or "resize" (bilinear x2, then
    a 3x3 convolution: no checkerboard). ``output_scale=2``: the last decoder level keeps
    ``ngf // 2`` (at least 8) feature channels at the canvas size instead of painting the image there; a
    refiner then sees them with the sketch itself, resizes x2 and paints at twice the size with
    two narrow 3x3 convolutions, cheap enough at 512x640 (``benchmarks/generator_latency.py``).
    """

    def __init__(
        self,
        in_channels: int = 1,
        out_channels: int = 3,
        ngf: int = 32,
        num_downs: int = 6,
        dropout_levels: int = 3,
        canvas_size: tuple[int, int] = (256, 320),
        upsample: str = "transposed",
        output_scale: int = 1,
    ):
        super().__init__()
        if upsample not in UPSAMPLING:
            raise ValueError(f"upsample must be one of {UPSAMPLING}, not {upsample!r}")
        if output_scale not in OUTPUT_SCALES:
            raise ValueError(f"output_scale must be one of {OUTPUT_SCALES}, not {output_scale!r}")
        if output_scale != 1 and upsample != "resize":
            raise ValueError("output_scale=2 needs upsample='resize' (its refiner resizes, it has no transposed path)")
        self.in_channels = in_channels
        self.num_downs = num_downs
        self.canvas_size = tuple(canvas_size)
        self.upsample = upsample
        self.output_scale = output_scale
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
            self.decoder.append(_up(incoming, widths[level - 1], dropout, upsample))
        if output_scale == 1:
            self.to_image = nn.Sequential(*_upsample_conv(widths[0] * 2, out_channels, upsample, bias=True), nn.Tanh())
        else:
            refiner_width = max(ngf // 2, 8)
            self.to_image = _up(widths[0] * 2, refiner_width, dropout=False, upsample=upsample)
            # The sketch joins the refiner at full canvas detail: the only skip at that size.
            self.refiner = nn.Sequential(
                nn.Upsample(scale_factor=output_scale, mode="bilinear", align_corners=False),
                nn.Conv2d(refiner_width + in_channels, refiner_width, 3, padding=1),
                nn.ReLU(inplace=True),
                nn.Conv2d(refiner_width, out_channels, 3, padding=1),
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
        if self.output_scale == 1:
            return self.to_image(features)
        return self.refiner(torch.cat([self.to_image(features), sketch], dim=1))


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
        return self.model(_pair(sketch, photo))

    def features(self, sketch: torch.Tensor, photo: torch.Tensor) -> list[torch.Tensor]:
        """Every block's activation (after its LeakyReLU), then the patch logits last: what
        feature matching compares between real and generated photos."""
        outputs = []
        features = _pair(sketch, photo)
        for layer in self.model:
            features = layer(features)
            if isinstance(layer, nn.LeakyReLU):
                outputs.append(features)
        return outputs + [features]


def _pair(sketch: torch.Tensor, photo: torch.Tensor) -> torch.Tensor:
    """Sketch and photo stacked along channels; a sketch smaller than the photo (a generator with
    output_scale > 1) is resized up to it first."""
    if sketch.shape[-2:] != photo.shape[-2:]:
        sketch = F.interpolate(sketch, size=photo.shape[-2:], mode="bilinear", align_corners=False)
    return torch.cat([sketch, photo], dim=1)


class MultiScalePatchDiscriminator(nn.Module):
    """``num_scales`` PatchGANs, each on the pair average-pooled once more than the one before
    (pix2pixHD, Wang et al. 2018): the coarse ones judge the whole face's layout, the full-size
    one the texture."""

    def __init__(self, num_scales: int = 2, sketch_channels: int = 1, photo_channels: int = 3, ndf: int = 64):
        super().__init__()
        if num_scales < 1:
            raise ValueError(f"num_scales must be at least 1, not {num_scales}")
        self.scales = nn.ModuleList(PatchDiscriminator(sketch_channels, photo_channels, ndf) for _ in range(num_scales))

    def forward(self, sketch: torch.Tensor, photo: torch.Tensor) -> list[list[torch.Tensor]]:
        """One list per scale, full size first: every block's activation, the patch logits last.
        (The features come out of ``forward`` so that a DistributedDataParallel wrapper syncs them.)"""
        pair = _pair(sketch, photo)
        outputs = []
        for index, discriminator in enumerate(self.scales):
            if index:
                pair = F.avg_pool2d(pair, 3, stride=2, padding=1, count_include_pad=False)
            outputs.append(discriminator.features(pair[:, : -photo.shape[1]], pair[:, -photo.shape[1] :]))
        return outputs

    def load_state_dict(self, state_dict, strict: bool = True, assign: bool = False):
        """Also takes a single PatchDiscriminator's weights (a pre-v2 checkpoint) as its first scale."""
        if any(name.startswith("model.") for name in state_dict):
            state_dict = {f"scales.0.{name}": value for name, value in state_dict.items()}
        return super().load_state_dict(state_dict, strict=strict, assign=assign)


class GANLoss(nn.Module):
    """Vanilla (cross-entropy) GAN loss against an all-real or all-fake patch map."""

    def __init__(self):
        super().__init__()
        self.criterion = nn.BCEWithLogitsLoss()

    def forward(self, patch_logits: torch.Tensor, target_is_real: bool) -> torch.Tensor:
        target = torch.ones_like(patch_logits) if target_is_real else torch.zeros_like(patch_logits)
        return self.criterion(patch_logits, target)


class _ResidualBlock(nn.Module):
    def __init__(self, channels: int):
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(channels, channels, 3, padding=1), nn.ReLU(inplace=True),
                                  nn.Conv2d(channels, channels, 3, padding=1))

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return features + self.body(features)


class FaceUpscaler(
    nn.Module,
    PyTorchModelHubMixin,
    library_name="sketch2face",
    repo_url="https://github.com/sketch2face/sketch2face",
    tags=["super-resolution", "face"],
    license="mit",
):
    """x2 super-resolution of a face: a bilinear x2 of the image plus a learned correction.

    Images in [-1, 1] (3 channels) of any size; the output is twice the height and width. The
    network runs at the input size (``blocks`` residual blocks of ``channels`` features) and
    paints the four sub-pixels of each input pixel with one convolution and a pixel shuffle
    (ESPCN, Shi et al. 2016): every convolution at the small size, so 512x640 costs little.
    The shuffle's kernels start as copies of one (ICNR, Aitken et al. 2017), so training starts
    from a correction without a checkerboard.
    """

    scale = 2

    def __init__(self, channels: int = 16, blocks: int = 4):
        super().__init__()
        self.channels = channels
        self.blocks = blocks
        self.head = nn.Conv2d(3, channels, 3, padding=1)
        self.body = nn.Sequential(*(_ResidualBlock(channels) for _ in range(blocks)))
        self.to_subpixels = nn.Conv2d(channels, 3 * self.scale**2, 3, padding=1)
        self.shuffle = nn.PixelShuffle(self.scale)
        with torch.no_grad():  # ICNR: each output channel's four sub-pixel kernels start equal
            one_per_colour = self.to_subpixels.weight[:: self.scale**2].clone()
            self.to_subpixels.weight.copy_(one_per_colour.repeat_interleave(self.scale**2, dim=0))
            self.to_subpixels.bias.zero_()

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        base = F.interpolate(image, scale_factor=self.scale, mode="bilinear", align_corners=False)
        features = self.head(image)
        correction = self.shuffle(self.to_subpixels(features + self.body(features)))
        return (base + correction).clamp(-1.0, 1.0)


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
