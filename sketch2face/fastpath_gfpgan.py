"""Inference-only rewrite of GFPGANv1Clean for CPU serving, as fastpath.py is for the generator.

    from sketch2face.fastpath_gfpgan import FastGFPGAN
    fast = FastGFPGAN(stock_network).eval()        # same outputs (up to float rounding), less CPU

It runs the same network with the same weights, re-arranged for CPU: channels-last memory, the
style modulation folded into one weight per layer, bias, noise and activations applied in place,
the two SFT branches merged into one convolution, and linear ops reordered to run at the lower
resolution. Measured in docs/gfpgan.md; the tests check it against the stock forward.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

_CHANNELS_LAST = torch.channels_last


def _upsample2x(x: torch.Tensor) -> torch.Tensor:
    return F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=False)


def _channels_last_conv(conv: nn.Conv2d) -> nn.Conv2d:
    """A copy of ``conv`` with channels-last weights (the stock network stays usable as is)."""
    copy = nn.Conv2d(
        conv.in_channels, conv.out_channels, conv.kernel_size, conv.stride, conv.padding, groups=conv.groups, bias=conv.bias is not None
    )
    with torch.no_grad():
        copy.weight.copy_(conv.weight)
        if conv.bias is not None:
            copy.bias.copy_(conv.bias)
    copy.weight.data = copy.weight.data.contiguous(memory_format=_CHANNELS_LAST)
    return copy.to(conv.weight.device)


class _ModulatedConv(nn.Module):
    """StyleGAN2's modulated conv for batch 1: style and demodulation folded into one weight.

    demod = rsqrt(sum_(i,k) (W[o,i,k] s_i)^2) = rsqrt((s^2) @ sum_k W[o,:,k]^2): the squared
    kernel sums are precomputed, the gain and the bias go into the convolution itself.
    """

    def __init__(self, stock, gain: float = 1.0, bias: torch.Tensor | None = None):
        super().__init__()
        self.modulation = stock.modulation
        weight = stock.weight.detach()[0]  # (out, in, k, k)
        self.register_buffer("weight", weight.contiguous(memory_format=_CHANNELS_LAST))
        self.register_buffer("kernel_energy", weight.pow(2).sum((2, 3)).t().contiguous())  # (in, out)
        self.register_buffer("bias", None if bias is None else bias.detach().reshape(-1).clone())
        self.demodulate = stock.demodulate
        self.eps = stock.eps
        self.gain = gain
        self.upsample = stock.sample_mode == "upsample"
        self.padding = stock.padding
        if stock.sample_mode not in (None, "upsample"):
            raise ValueError(f"unsupported sample_mode {stock.sample_mode!r}")

    def forward(self, x: torch.Tensor, style: torch.Tensor) -> torch.Tensor:
        scale = self.modulation(style)  # (1, in)
        weight = self.weight * scale.view(1, -1, 1, 1)
        if self.demodulate:
            demod = torch.rsqrt(scale.pow(2) @ self.kernel_energy + self.eps)  # (1, out)
            weight = weight * (demod.view(-1, 1, 1, 1) * self.gain)
        elif self.gain != 1.0:
            weight = weight * self.gain
        if self.upsample:
            x = _upsample2x(x)
        return F.conv2d(x, weight, self.bias, padding=self.padding)


class _StyleConv(nn.Module):
    """conv * sqrt(2) + noise_strength * fixed_noise + bias -> leaky ReLU, two passes in place."""

    def __init__(self, stock, noise: torch.Tensor):
        super().__init__()
        self.conv = _ModulatedConv(stock.modulated_conv, gain=2**0.5, bias=stock.bias)
        self.register_buffer("noise", (stock.weight.detach() * noise).contiguous())

    def forward(self, x: torch.Tensor, style: torch.Tensor) -> torch.Tensor:
        out = self.conv(x, style)
        out.add_(self.noise)
        return F.leaky_relu_(out, 0.2)


class _ToRGB(nn.Module):
    def __init__(self, stock):
        super().__init__()
        self.conv = _ModulatedConv(stock.modulated_conv, bias=stock.bias)
        self.upsample = stock.upsample

    def forward(self, x: torch.Tensor, style: torch.Tensor, skip: torch.Tensor | None = None) -> torch.Tensor:
        out = self.conv(x, style)
        if skip is not None:
            out.add_(_upsample2x(skip) if self.upsample else skip)
        return out


class _ResBlock(nn.Module):
    """GFPGAN's ResBlock. A 0.5x bilinear resize of even sizes *is* a 2x2 average pool; the 1x1
    skip conv (no bias) commutes with the 2x bilinear upsample, so it runs before it, on 4x
    fewer pixels."""

    def __init__(self, stock):
        super().__init__()
        self.conv1 = _channels_last_conv(stock.conv1)
        self.conv2 = _channels_last_conv(stock.conv2)
        self.skip = _channels_last_conv(stock.skip)
        self.down = stock.scale_factor == 0.5

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.leaky_relu_(self.conv1(x), 0.2)
        if self.down:
            out = F.leaky_relu_(self.conv2(F.avg_pool2d(out, 2)), 0.2)
            return out.add_(self.skip(F.avg_pool2d(x, 2)))
        out = F.leaky_relu_(self.conv2(_upsample2x(out)), 0.2)
        return out.add_(_upsample2x(self.skip(x)))


class _SFTConditions(nn.Module):
    """The scale and shift branches (conv3x3 -> lrelu -> conv3x3 each) as one wider conv and one
    2-group conv: same arithmetic, two large convolutions instead of four."""

    def __init__(self, scale_branch: nn.Sequential, shift_branch: nn.Sequential):
        super().__init__()
        first_scale, first_shift = scale_branch[0], shift_branch[0]
        self.first = nn.Conv2d(first_scale.in_channels, 2 * first_scale.out_channels, 3, 1, 1)
        second_scale, second_shift = scale_branch[2], shift_branch[2]
        self.second = nn.Conv2d(2 * second_scale.in_channels, 2 * second_scale.out_channels, 3, 1, 1, groups=2)
        with torch.no_grad():
            for merged, pair in ((self.first, (first_scale, first_shift)), (self.second, (second_scale, second_shift))):
                merged.weight.copy_(torch.cat([conv.weight for conv in pair]))
                merged.bias.copy_(torch.cat([conv.bias for conv in pair]))
        self.first, self.second = _channels_last_conv(self.first), _channels_last_conv(self.second)
        self.to(first_scale.weight.device)

    def forward(self, feat: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        scale, shift = self.second(F.leaky_relu_(self.first(feat), 0.2)).chunk(2, dim=1)
        return scale, shift


class FastGFPGAN(nn.Module):
    """GFPGANv1Clean's inference forward (``return_rgb=False``, ``randomize_noise=False``),
    rearranged for CPU speed. It copies what it rearranges (conv weights, channels-last), shares
    the rest (the linear layers) and leaves the stock network unchanged. Takes one (1, 3, S, S)
    image in [-1, 1] and returns the restored one.

    Thread-safe: the forward only writes to tensors it has just created.
    """

    def __init__(self, stock: nn.Module):
        super().__init__()
        decoder = stock.stylegan_decoder
        if not stock.input_is_latent:
            raise ValueError("only GFPGAN checkpoints with input_is_latent=True are supported")
        self.num_style_feat = stock.num_style_feat
        self.num_latent = decoder.num_latent
        self.different_w = stock.different_w
        self.sft_half = decoder.sft_half
        self.conv_body_first = _channels_last_conv(stock.conv_body_first)
        self.conv_body_down = nn.ModuleList(_ResBlock(block) for block in stock.conv_body_down)
        self.final_conv = _channels_last_conv(stock.final_conv)
        self.final_linear = stock.final_linear
        self.conv_body_up = nn.ModuleList(_ResBlock(block) for block in stock.conv_body_up)
        self.conditions = nn.ModuleList(_SFTConditions(a, b) for a, b in zip(stock.condition_scale, stock.condition_shift))
        self.register_buffer("constant_input", decoder.constant_input.weight.detach().contiguous(memory_format=_CHANNELS_LAST))
        noises = [getattr(decoder.noises, f"noise{index}") for index in range(decoder.num_layers)]
        self.style_conv1 = _StyleConv(decoder.style_conv1, noises[0])
        self.to_rgb1 = _ToRGB(decoder.to_rgb1)
        self.style_convs = nn.ModuleList(_StyleConv(conv, noises[index + 1]) for index, conv in enumerate(decoder.style_convs))
        self.to_rgbs = nn.ModuleList(_ToRGB(to_rgb) for to_rgb in decoder.to_rgbs)

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        if image.size(0) != 1:
            raise ValueError("FastGFPGAN restores one face at a time")
        feat = F.leaky_relu_(self.conv_body_first(image.contiguous(memory_format=_CHANNELS_LAST)), 0.2)
        unet_skips = []
        for block in self.conv_body_down:
            feat = block(feat)
            unet_skips.append(feat)
        feat = F.leaky_relu_(self.final_conv(feat), 0.2)
        style_code = self.final_linear(feat.contiguous().flatten(1))  # NCHW order, as trained
        if self.different_w:
            latent = style_code.view(1, -1, self.num_style_feat)
        else:
            latent = style_code.view(1, 1, -1).expand(1, self.num_latent, -1)

        conditions = []
        for block, condition, skip in zip(self.conv_body_up, self.conditions, reversed(unet_skips)):
            feat = block(feat + skip)
            conditions.append(condition(feat))

        out = self.style_conv1(self.constant_input, latent[:, 0])
        rgb = self.to_rgb1(out, latent[:, 1])
        for level, to_rgb in enumerate(self.to_rgbs):
            index = 2 * level + 1
            out = self.style_convs[2 * level](out, latent[:, index])
            if level < len(conditions):
                scale, shift = conditions[level]
                target = out[:, out.size(1) // 2 :] if self.sft_half else out
                target.mul_(scale).add_(shift)
            out = self.style_convs[2 * level + 1](out, latent[:, index + 1])
            rgb = to_rgb(out, latent[:, index + 2], rgb)
        return rgb
