"""GFPGAN v1.4 face restoration for generated faces: sharper eyes, skin and hair, at 2x.

    from sketch2face.restore import FaceRestorer
    restorer = FaceRestorer(device="cpu")   # cheap: nothing is loaded or downloaded here
    big = restorer.restore(face)            # uint8 RGB (320, 256, 3) canvas face -> (640, 512, 3)

How it works (details and numbers in docs/gfpgan.md):

* **No face-detection network.** The generator draws the face at (about) the same place on its
  canvas, so one fixed transform maps the canvas onto GFPGAN's 512x512 FFHQ face template
  (least squares over 5 landmarks: the mean of dlib's landmarks over the 300 training faces,
  against facexlib's template). Drawings shift the face by up to ~18 canvas px, so when the
  optional dlib extra is installed its landmarks refine that per face (within sanity bounds,
  else the fixed transform is kept). The face is warped into the template, restored, warped
  back into the 2x (Lanczos) upscaled canvas and blended in with a feathered mask.
* **Weights** come from ``$SKETCH2FACE_GFPGAN_PATH`` (a local file; loaded, not hash-pinned)
  or are downloaded once from the official GitHub release into ``$SKETCH2FACE_CACHE``
  (default ``~/.cache/sketch2face``), sha256-pinned, written to a temporary file and renamed.
  Loading uses ``torch.load(weights_only=True)``; the architecture is read off the tensor shapes,
  so smaller GFPGANv1Clean checkpoints load too.
* **Speed.** :class:`FastGFPGAN` runs the same network with the same weights, re-arranged for CPU:
  channels-last memory, the style modulation folded into one weight per layer, bias, noise and
  activations applied in place, the two SFT branches merged into one convolution, and linear
  ops reordered to run at the lower resolution. Its output equals the stock forward up to float
  rounding (the tests check it).
* **Failures** (no weights and offline, hash mismatch, unreadable file, unexpected input) raise
  :class:`RestorationUnavailable`, a :class:`~sketch2face.errors.Sketch2FaceError` with a one-line
  reason; the pipeline turns it into a note and keeps the unrestored face.
"""

from __future__ import annotations

# Must run before anything imports torchvision (basicsr, facexlib and gfpgan all do).
from . import _torchvision_compat  # noqa: F401  isort: skip

import concurrent.futures
import contextlib
import functools
import hashlib
import logging
import math
import os
import re
import socket
import tempfile
import threading
import time
import urllib.parse
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from .errors import Sketch2FaceError
from .preprocess import CANVAS_SIZE

logger = logging.getLogger(__name__)

# -- where the weights come from -----------------------------------------------------------
CHECKPOINT_NAME = "GFPGANv1.4.pth"
CHECKPOINT_URL = "https://github.com/TencentARC/GFPGAN/releases/download/v1.3.0/GFPGANv1.4.pth"
# Not recomputed here (GitHub is unreachable from the build machine): the value published
# independently by several projects that pin this file, with the same byte size.
CHECKPOINT_SHA256 = "e2cd4703ab14f4d01fd1383a8a8b266f9a5833dacee8e6a79d3bf21a1b6be5ad"
CHECKPOINT_BYTES = 348_632_874

PATH_ENV = "SKETCH2FACE_GFPGAN_PATH"  # a local checkpoint file: used as is, never downloaded
URL_ENV = "SKETCH2FACE_GFPGAN_URL"  # a mirror of the official file (the sha256 pin still applies)
CACHE_ENV = "SKETCH2FACE_CACHE"
ALIGN_ENV = "SKETCH2FACE_GFPGAN_ALIGN"  # "fixed": skip the optional dlib landmark refinement
OFFLINE_ENVS = ("SKETCH2FACE_OFFLINE", "HF_HUB_OFFLINE")

CONNECT_TIMEOUT_S = 5.0  # DNS + TCP connect: offline fails fast instead of hanging
READ_TIMEOUT_S = 30.0  # the longest a stalled download may sit without a byte
RETRY_AFTER_S = 300.0  # after a failed download, later requests fail at once for this long

# -- the fixed canvas -> GFPGAN alignment ----------------------------------------------------
# GFPGAN's 512x512 FFHQ template (facexlib): eye centres, nose tip, mouth corners.
GFPGAN_TEMPLATE_5 = np.array(
    [[192.98138, 239.94708], [318.90277, 240.1936], [256.63416, 314.01935], [201.26117, 371.41043], [313.08905, 371.15118]]
)
# The same five points on the generator's 256x320 canvas: mean over the 300 training faces
# (CUFS train + Face Research Lab sets, aligned to the canvas as in sketch2face.training.data) of dlib's
# 68-point landmarks (eye = mean of its 6 points, nose tip = 30, mouth corners = 48 and 54).
CANVAS_TEMPLATE_5 = np.array([[94.7, 164.0], [160.5, 164.3], [127.7, 197.6], [101.6, 235.8], [153.9, 235.7]])
FACE_SIZE = 512
UPSCALE = 2
FEATHER_PX = 12  # output pixels over which the restored face fades into the upscaled canvas


class RestorationUnavailable(Sketch2FaceError, RuntimeError):
    """GFPGAN could not run; str(error) says why in one line."""


class _DownloadFailed(RestorationUnavailable):
    """Remembered for RETRY_AFTER_S: retrying costs a network timeout or another 350 MB."""


# ==========================================================================================
# Weights: cache, download, verification
# ==========================================================================================


def cache_dir() -> Path:
    """$SKETCH2FACE_CACHE, else $XDG_CACHE_HOME/sketch2face, else ~/.cache/sketch2face."""
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base).expanduser() / "sketch2face"


def offline_mode() -> bool:
    return any(os.environ.get(name, "").strip().lower() in ("1", "true", "yes", "on") for name in OFFLINE_ENVS)


def sha256_of(path: Path, chunk_bytes: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(chunk_bytes):
            digest.update(chunk)
    return digest.hexdigest()


def _resolve_host(url: str, timeout: float) -> None:
    """DNS lookup under a deadline: HTTP clients' connect timeouts don't cover the resolver."""
    parts = urllib.parse.urlsplit(url)
    if not parts.hostname:
        raise ValueError(f"no host in {url!r}")
    pool = concurrent.futures.ThreadPoolExecutor(max_workers=1)
    try:
        future = pool.submit(socket.getaddrinfo, parts.hostname, parts.port or 443, type=socket.SOCK_STREAM)
        future.result(timeout=timeout)
    except concurrent.futures.TimeoutError:
        raise OSError(f"resolving {parts.hostname} took over {timeout:.0f} s") from None
    finally:
        pool.shutdown(wait=False)


def download_checkpoint(
    url: str,
    destination: Path,
    expected_sha256: str | None = CHECKPOINT_SHA256,
    expected_bytes: int | None = CHECKPOINT_BYTES,
    connect_timeout: float | None = None,
    read_timeout: float | None = None,
) -> Path:
    """Stream ``url`` to ``destination`` via a temporary file in the same folder, then rename.

    The file only appears under its final name complete and verified, so concurrent downloads
    (threads or processes) never see or leave a partial checkpoint. Timeouts default to
    CONNECT_TIMEOUT_S / READ_TIMEOUT_S. Raises RestorationUnavailable with a one-line reason.
    """
    import httpx  # gradio's HTTP client: (connect, read) timeouts and redirects (GitHub -> CDN)

    connect_timeout = CONNECT_TIMEOUT_S if connect_timeout is None else connect_timeout
    read_timeout = READ_TIMEOUT_S if read_timeout is None else read_timeout
    timeout = httpx.Timeout(read_timeout, connect=connect_timeout)
    started = time.monotonic()
    try:
        destination.parent.mkdir(parents=True, exist_ok=True)
        handle = tempfile.NamedTemporaryFile(dir=destination.parent, prefix=f".{destination.name}.", suffix=".part", delete=False)
    except OSError as error:
        reason = error.strerror or error
        raise RestorationUnavailable(f"Can't write the GFPGAN weights to {destination.parent} ({reason}); set {CACHE_ENV}.") from None
    partial = Path(handle.name)
    try:
        with handle:
            _resolve_host(url, connect_timeout)
            digest, received = hashlib.sha256(), 0
            headers = {"User-Agent": "sketch2face"}
            with httpx.stream("GET", url, timeout=timeout, follow_redirects=True, headers=headers) as response:
                response.raise_for_status()
                for chunk in response.iter_bytes(1 << 20):
                    received += len(chunk)
                    if expected_bytes is not None and received > expected_bytes:
                        raise RestorationUnavailable(
                            f"The download from {url} is larger than {destination.name} ({expected_bytes} bytes); it was discarded."
                        )
                    digest.update(chunk)
                    handle.write(chunk)
        if expected_sha256 is not None and digest.hexdigest() != expected_sha256:
            raise RestorationUnavailable(
                f"The downloaded {destination.name} has sha256 {digest.hexdigest()[:12]}..., not the pinned "
                f"{expected_sha256[:12]}... (corrupted, or not the official file); it was discarded."
            )
        os.replace(partial, destination)
        logger.info("Downloaded %s (%.0f MB) in %.0f s.", destination, received / 1e6, time.monotonic() - started)
        return destination
    except RestorationUnavailable:
        raise
    except httpx.HTTPStatusError as error:
        raise RestorationUnavailable(f"Could not download the GFPGAN weights from {url}: HTTP {error.response.status_code}.") from None
    except (httpx.HTTPError, OSError, ValueError) as error:  # DNS, refused, timeouts, disk full
        reason = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise RestorationUnavailable(f"Could not download the GFPGAN weights from {url} (offline? {reason}).") from None
    finally:
        partial.unlink(missing_ok=True)


# ==========================================================================================
# The network: architecture from the checkpoint, and a CPU-friendly forward
# ==========================================================================================


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


def stock_forward(network: nn.Module, image: torch.Tensor) -> torch.Tensor:
    """GFPGANer's call (``return_rgb=False``) with the checkpoint's fixed noise, for comparison."""
    return network(image, return_rgb=False, randomize_noise=False)[0]


# ==========================================================================================
# Alignment: canvas <-> GFPGAN template, and the paste back
# ==========================================================================================


def _fit_scale_translation(source: np.ndarray, target: np.ndarray) -> np.ndarray:
    """Least-squares s, t with target ~ s * source + t (upright faces: no rotation)."""
    source_centred = source - source.mean(0)
    target_centred = target - target.mean(0)
    scale = float((source_centred * target_centred).sum() / (source_centred**2).sum())
    shift = target.mean(0) - scale * source.mean(0)
    return np.array([[scale, 0.0, shift[0]], [0.0, scale, shift[1]]])


def _fit_similarity(source: np.ndarray, target: np.ndarray) -> np.ndarray:
    """Least-squares scale, rotation and translation (2x3) with target ~ M @ [source, 1]."""
    source_centred = source - source.mean(0)
    target_centred = target - target.mean(0)
    norm = (source_centred**2).sum()
    a = (source_centred * target_centred).sum() / norm  # s cos
    b = (source_centred[:, 0] * target_centred[:, 1] - source_centred[:, 1] * target_centred[:, 0]).sum() / norm  # s sin
    rotation = np.array([[a, -b], [b, a]])
    shift = target.mean(0) - rotation @ source.mean(0)
    return np.hstack([rotation, shift[:, None]])


def _homogeneous(matrix: np.ndarray) -> np.ndarray:
    return np.vstack([matrix, [0.0, 0.0, 1.0]])


CANVAS_TO_TEMPLATE = _fit_scale_translation(CANVAS_TEMPLATE_5, GFPGAN_TEMPLATE_5)
# How far a face found by landmarks may sit from the canonical framing before it is distrusted.
MAX_LANDMARK_SHIFT_PX = 48.0  # canvas pixels, eye midpoint
MAX_LANDMARK_ROTATION_DEG = 20.0
LANDMARK_SCALE_RANGE = (0.75, 1.35)


def _pixels_to_canvas(height: int, width: int) -> np.ndarray:
    """3x3: pixel coordinates of a canvas-framed image of this size -> canvas coordinates."""
    canvas_width, canvas_height = CANVAS_SIZE
    if not math.isclose(width / height, canvas_width / canvas_height, rel_tol=0.02):
        raise RestorationUnavailable(
            f"Face restoration expects the generator's {canvas_width}x{canvas_height} framing, got a {width}x{height} image."
        )
    # Pixel centres: canvas x_c + 0.5 = (x + 0.5) * canvas_width / width.
    factor = canvas_width / width
    return np.array([[factor, 0.0, 0.5 * factor - 0.5], [0.0, factor, 0.5 * factor - 0.5], [0.0, 0.0, 1.0]])


def face_to_template(height: int, width: int) -> np.ndarray:
    """The fixed 2x3 affine from a canvas-framed image of this size (any multiple of the canvas)
    to GFPGAN's 512 template."""
    return CANVAS_TO_TEMPLATE @ _pixels_to_canvas(height, width)


def landmarks_to_template(points: np.ndarray, height: int, width: int) -> np.ndarray | None:
    """2x3 face -> template affine that puts this face's 5 landmarks (pixels, dlib convention as
    CANVAS_TEMPLATE_5) where the canonical canvas face sits; None when the fit is implausible."""
    to_canvas = _pixels_to_canvas(height, width)
    canvas_points = points @ to_canvas[:2, :2].T + to_canvas[:2, 2]
    correction = _fit_similarity(canvas_points, CANVAS_TEMPLATE_5)
    scale = math.hypot(correction[0, 0], correction[1, 0])
    rotation = math.degrees(math.atan2(correction[1, 0], correction[0, 0]))
    shift = np.linalg.norm(canvas_points[:2].mean(0) - CANVAS_TEMPLATE_5[:2].mean(0))
    plausible = LANDMARK_SCALE_RANGE[0] <= scale <= LANDMARK_SCALE_RANGE[1]
    plausible &= abs(rotation) <= MAX_LANDMARK_ROTATION_DEG and shift <= MAX_LANDMARK_SHIFT_PX
    if not plausible:
        return None
    return CANVAS_TO_TEMPLATE @ _homogeneous(correction) @ to_canvas


def _output_to_template(face_matrix: np.ndarray) -> np.ndarray:
    """face -> template affine, re-expressed for the UPSCALE x output (pixel centres kept)."""
    output_to_face = np.array([[1 / UPSCALE, 0.0, 0.5 / UPSCALE - 0.5], [0.0, 1 / UPSCALE, 0.5 / UPSCALE - 0.5], [0.0, 0.0, 1.0]])
    return face_matrix @ output_to_face


@functools.lru_cache(maxsize=8)
def _paste_mask(height: int, width: int, output_to_template: tuple[float, ...]) -> np.ndarray:
    """Float (H, W, 1) weight of the restored face in the upscaled frame: 1 inside the template
    square, fading to 0 over FEATHER_PX at its edges that fall inside the frame."""
    inside = cv2.warpAffine(
        np.ones((FACE_SIZE, FACE_SIZE), np.float32),
        np.array(output_to_template).reshape(2, 3),
        (width, height),
        flags=cv2.INTER_NEAREST | cv2.WARP_INVERSE_MAP,
        borderMode=cv2.BORDER_CONSTANT,
        borderValue=0,
    )
    # Erode away from the template's edges (the frame's border is not an edge), then blur.
    eroded = cv2.erode(inside, np.ones((2 * FEATHER_PX + 1, 2 * FEATHER_PX + 1), np.uint8), borderType=cv2.BORDER_REPLICATE)
    mask = cv2.GaussianBlur(eroded, (0, 0), sigmaX=FEATHER_PX / 2.0, borderType=cv2.BORDER_REPLICATE)
    mask.setflags(write=False)
    return mask[..., None]


def crop_to_template(face: np.ndarray, matrix: np.ndarray | None = None) -> np.ndarray:
    """The face warped into GFPGAN's 512x512 template (uint8 RGB), by ``matrix`` (face ->
    template, default: the fixed canvas alignment). Strips the face doesn't cover replicate its border."""
    if matrix is None:
        matrix = face_to_template(*face.shape[:2])
    return cv2.warpAffine(face, matrix, (FACE_SIZE, FACE_SIZE), flags=cv2.INTER_CUBIC, borderMode=cv2.BORDER_REPLICATE)


def paste_back(face: np.ndarray, restored: np.ndarray, matrix: np.ndarray | None = None) -> np.ndarray:
    """Upscale the face UPSCALE x (Lanczos) and blend the restored template face over it;
    ``matrix`` is the face -> template affine the crop was made with."""
    if matrix is None:
        matrix = face_to_template(*face.shape[:2])
    height, width = face.shape[0] * UPSCALE, face.shape[1] * UPSCALE
    output_to_template = _output_to_template(matrix)
    background = cv2.resize(face, (width, height), interpolation=cv2.INTER_LANCZOS4)
    restored_in_frame = cv2.warpAffine(
        restored, output_to_template, (width, height), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP, borderMode=cv2.BORDER_REPLICATE
    )
    mask = _paste_mask(height, width, tuple(np.round(output_to_template, 6).ravel().tolist()))
    blended = restored_in_frame.astype(np.float32) * mask + background.astype(np.float32) * (1.0 - mask)
    return np.clip(blended + 0.5, 0, 255).astype(np.uint8)


class LandmarkLocator:
    """dlib's HOG face detector + 68-point predictor (the optional dev extras ``dlib-bin`` and
    ``face-recognition-models``), reduced to the 5 points of CANVAS_TEMPLATE_5.

    Raises ImportError/OSError/RuntimeError when they are not installed.
    """

    def __init__(self):
        import importlib.util

        import dlib

        spec = importlib.util.find_spec("face_recognition_models")
        if spec is None or spec.origin is None:
            raise ImportError("face_recognition_models is not installed")
        model = Path(spec.origin).parent / "models" / "shape_predictor_68_face_landmarks.dat"
        self._detector = dlib.get_frontal_face_detector()
        self._predictor = dlib.shape_predictor(str(model))
        self._lock = threading.Lock()  # dlib objects make no thread-safety promise

    def __call__(self, face: np.ndarray) -> np.ndarray | None:
        face = np.ascontiguousarray(face)  # dlib misreads strided arrays (e.g. a permuted tensor's)
        with self._lock:
            boxes = self._detector(face, 1)
            if not boxes:
                return None
            shape = self._predictor(face, max(boxes, key=lambda box: box.area()))
        points = np.array([[shape.part(i).x, shape.part(i).y] for i in range(68)], dtype=np.float64)
        return np.array([points[36:42].mean(0), points[42:48].mean(0), points[30], points[48], points[54]])


def _to_tensor(image: np.ndarray, device: torch.device) -> torch.Tensor:
    tensor = torch.from_numpy(np.ascontiguousarray(image)).to(device=device, dtype=torch.float32)
    return (tensor.permute(2, 0, 1)[None] / 127.5 - 1.0).contiguous()


def _to_image(tensor: torch.Tensor) -> np.ndarray:
    image = ((tensor[0].clamp(-1.0, 1.0) + 1.0) * 127.5).round().to(torch.uint8)
    return image.permute(1, 2, 0).cpu().numpy()


# ==========================================================================================
# The restorer
# ==========================================================================================


_locator_lock = threading.Lock()
_locator_state: list[LandmarkLocator | None] = []  # empty until tried; then [locator or None]


def _shared_locator() -> LandmarkLocator | None:
    """One LandmarkLocator per process (its model is 100 MB), or None without the dlib extra."""
    with _locator_lock:
        if not _locator_state:
            try:
                _locator_state.append(LandmarkLocator())
            except Exception as error:  # noqa: BLE001  optional extra: any failure means "fixed alignment"
                logger.info("Face landmarks unavailable (%s); using the fixed canvas alignment.", error)
                _locator_state.append(None)
        return _locator_state[0]


class FaceRestorer:
    """GFPGAN v1.4 for canvas-framed generator faces. Creating one is free; the weights load on
    the first :meth:`restore` (or :meth:`load`), once, shared by all threads.

    ``checkpoint``: a local GFPGANv1Clean checkpoint; default $SKETCH2FACE_GFPGAN_PATH, else the
    sha256-pinned official file in :func:`cache_dir`, downloaded on first use.
    ``optimized``: run :class:`FastGFPGAN` (default) or the stock forward.
    ``alignment``: "auto" refines the fixed canvas alignment with dlib landmarks when dlib is
    installed and finds a plausible face; "fixed" never does ($SKETCH2FACE_GFPGAN_ALIGN).
    """

    def __init__(
        self,
        device: str | torch.device = "cpu",
        checkpoint: str | os.PathLike | None = None,
        url: str | None = None,
        optimized: bool = True,
        alignment: str | None = None,
    ):
        self.device = torch.device(device)
        self.checkpoint = Path(checkpoint).expanduser() if checkpoint is not None else None
        self.url = url
        self.optimized = optimized
        self.alignment = alignment or os.environ.get(ALIGN_ENV) or "auto"
        if self.alignment not in ("auto", "fixed"):
            raise RestorationUnavailable(f"The GFPGAN alignment must be 'auto' or 'fixed', not {self.alignment!r} (${ALIGN_ENV}).")
        self._forward = None  # image tensor -> restored tensor, set once by load()
        self._locator: LandmarkLocator | None = None
        self._lock = threading.Lock()
        self._failure: tuple[float, str] | None = None  # (when, why) the last load failed

    @classmethod
    def from_network(cls, network: nn.Module, optimized: bool = True, alignment: str | None = None) -> "FaceRestorer":
        """A restorer around an already loaded GFPGANv1Clean (benchmarks, experiments)."""
        restorer = cls(device=next(network.parameters()).device, optimized=optimized, alignment=alignment)
        restorer._locator = restorer._load_locator()
        restorer._forward = FastGFPGAN(network).eval() if optimized else functools.partial(stock_forward, network)
        return restorer

    # -- public ---------------------------------------------------------------------------
    @property
    def loaded(self) -> bool:
        return self._forward is not None

    def load(self) -> None:
        """Find (or download) and load the weights now. Raises RestorationUnavailable."""
        if self._forward is not None:
            return
        with self._lock:
            if self._forward is not None:
                return
            if self._failure is not None and time.monotonic() - self._failure[0] < RETRY_AFTER_S:
                raise RestorationUnavailable(self._failure[1])
            try:
                forward = self._build_forward()
            except _DownloadFailed as error:
                self._failure = (time.monotonic(), str(error))
                raise
            self._locator = self._load_locator()
            self._forward = forward  # last: other threads see a fully loaded restorer
            self._failure = None

    def align(self, face: np.ndarray) -> tuple[np.ndarray, str]:
        """(face -> template 2x3 affine, "landmarks" or "fixed") for a canvas-framed face."""
        fixed = face_to_template(*face.shape[:2])
        if self._locator is not None:
            points = self._locator(face)
            if points is not None:
                matrix = landmarks_to_template(points, *face.shape[:2])
                if matrix is not None:
                    return matrix, "landmarks"
        return fixed, "fixed"

    def restore(self, face: np.ndarray) -> np.ndarray:
        """uint8 RGB (H, W, 3) in the canvas framing -> uint8 RGB (2H, 2W, 3), face restored."""
        face = self._check_face(face)
        self.load()
        matrix, _ = self.align(face)
        crop = crop_to_template(face, matrix)
        with torch.inference_mode():
            restored = _to_image(self._forward(_to_tensor(crop, self.device)))
        return paste_back(face, restored, matrix)

    # -- internals ------------------------------------------------------------------------
    @staticmethod
    def _check_face(face: Any) -> np.ndarray:
        face = np.ascontiguousarray(face)
        if face.dtype != np.uint8 or face.ndim != 3 or face.shape[2] != 3:
            raise RestorationUnavailable(f"Face restoration needs a uint8 RGB image, got {face.dtype} {face.shape}.")
        face_to_template(*face.shape[:2])  # raises for a framing it can't align
        return face

    def _load_locator(self) -> LandmarkLocator | None:
        return None if self.alignment == "fixed" else _shared_locator()

    def _build_forward(self):
        path, pinned = self._locate_checkpoint()
        started = time.monotonic()
        if pinned and sha256_of(path) != CHECKPOINT_SHA256:
            raise RestorationUnavailable(
                f"{path} does not match the pinned sha256 of {CHECKPOINT_NAME}; delete it to download it again."
            )
        try:
            network = load_gfpgan(path, self.device)
            # The fast module copies what it rearranges: only it stays alive, not both.
            forward = FastGFPGAN(network).eval() if self.optimized else functools.partial(stock_forward, network)
        except (ValueError, OSError) as error:
            raise RestorationUnavailable(f"Could not load the GFPGAN checkpoint {path}: {error}.") from None
        logger.info("GFPGAN loaded from %s in %.1f s.", path, time.monotonic() - started)
        return forward

    def _locate_checkpoint(self) -> tuple[Path, bool]:
        """(path, whether the sha256 pin applies). A file the user names is theirs: no pin."""
        explicit = self.checkpoint or (Path(os.environ[PATH_ENV]).expanduser() if os.environ.get(PATH_ENV) else None)
        if explicit is not None:
            if not explicit.is_file():
                source = "checkpoint=" if self.checkpoint else f"${PATH_ENV}"
                raise RestorationUnavailable(f"The GFPGAN checkpoint {explicit} ({source}) does not exist.")
            return explicit, False
        cached = cache_dir() / CHECKPOINT_NAME
        if cached.is_file():
            return cached, True
        if offline_mode():
            raise RestorationUnavailable(
                f"The GFPGAN weights are not in {cached.parent} and offline mode is on; set {PATH_ENV} to a local {CHECKPOINT_NAME}."
            )
        url = self.url or os.environ.get(URL_ENV) or CHECKPOINT_URL
        logger.info("Downloading %s (%.0f MB) from %s to %s.", CHECKPOINT_NAME, CHECKPOINT_BYTES / 1e6, url, cached)
        try:
            # download_checkpoint verified the sha256 while streaming: don't hash 350 MB twice.
            return download_checkpoint(url, cached), False
        except RestorationUnavailable as error:
            logger.warning("Downloading %s failed: %s", CHECKPOINT_NAME, error)
            raise _DownloadFailed(str(error)) from None
