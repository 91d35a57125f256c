"""Darknet "tiny" ImageNet classifier (ml5, MIT), ported to PyTorch for a perceptual loss.

The original is a TensorFlow.js layers model in ``../shared/models/darknet-tiny``: ``model.json``
(Keras topology + weights manifest) and float32 shard files. :meth:`DarknetTiny.load` reads
both with numpy and builds the same chain in torch: 15 x (3x3 or 1x1 conv without bias, batch
norm, LeakyReLU 0.1), 4 max-pools (2x2, stride 2, TF "same"), a 1x1 conv to 1000 classes and a
global average pool. No TensorFlow is involved.

Input scaling the original expects (ml5's ``Darknet`` wrapper): RGB, values divided by 255 to
[0, 1], no mean/std normalisation, bilinearly resized to 224x224. The network is fully
convolutional, so :meth:`DarknetTiny.features` takes any size (odd sizes pool like TF "same").

    darknet = DarknetTiny.load()                       # frozen, eval mode
    fake_features = darknet.features(fake_rgb)         # rgb in [-1, 1] (N, 3, H, W)
    loss = sum(F.l1_loss(f, r) for f, r in zip(fake_features, darknet.features(real_rgb)))

:data:`FEATURE_LAYERS` are the activations after the last LeakyReLU of each resolution before
it is pooled (full, 1/2, 1/4, 1/8 and 1/16 size; 16, 32, 128, 256 and 512 channels), the
darknet analogue of VGG's relu1_2 ... relu5_3 used by perceptual losses.
"""

from __future__ import annotations

import json
from collections import OrderedDict
from pathlib import Path

import numpy as np
import torch
from torch import nn

from .shared_models import default_models_root, require_file

FOLDER = "darknet-tiny"
FEATURE_LAYERS = ("leaky_re_lu_1", "leaky_re_lu_2", "leaky_re_lu_6", "leaky_re_lu_10", "leaky_re_lu_14")
IMAGE_SIZE = 224  # what the original was trained and served at


def read_tfjs_weights(folder: Path, manifest: list[dict]) -> dict[str, np.ndarray]:
    """The weights of a TFJS manifest: each group's shards concatenated, tensors in order."""
    weights = {}
    for group in manifest:
        buffer = b"".join(require_file(folder / shard, f"darknet-tiny weight shard {shard}").read_bytes()
                          for shard in group["paths"])
        offset = 0
        for entry in group["weights"]:
            if entry.get("dtype", "float32") != "float32" or "quantization" in entry:
                raise ValueError(f"darknet-tiny: {entry['name']} is not plain float32; only float32 weights are supported")
            count = int(np.prod(entry["shape"], dtype=np.int64))
            values = np.frombuffer(buffer, dtype="<f4", count=count, offset=offset)
            weights[entry["name"]] = values.reshape(entry["shape"]).astype(np.float32)
            offset += 4 * count
        if offset != len(buffer):
            raise ValueError(f"darknet-tiny: shard group {group['paths']} holds {len(buffer)} bytes, the manifest {offset}")
    return weights


def _same_padding(kernel: list[int], strides: list[int]) -> tuple[int, int]:
    if any(s != 1 for s in strides) or any(k % 2 == 0 for k in kernel):
        raise ValueError("darknet-tiny port: only stride-1 odd-kernel 'same' convolutions are supported")
    return kernel[0] // 2, kernel[1] // 2


class _GlobalAveragePool(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.mean(dim=(2, 3))


def _layers_from_keras(config: dict, weights: dict[str, np.ndarray]) -> "OrderedDict[str, nn.Module]":
    layers: OrderedDict[str, nn.Module] = OrderedDict()
    previous = None
    channels = None
    for layer in config["layers"]:
        kind, name, options = layer["class_name"], layer["name"], layer["config"]
        inbound = [node[0][0] for node in layer["inbound_nodes"]]
        if kind != "InputLayer" and inbound != [previous]:
            raise ValueError(f"darknet-tiny port: {name} does not continue the chain (inputs {inbound})")
        previous = name
        if options.get("data_format", "channels_last") != "channels_last":
            raise ValueError(f"darknet-tiny port: {name} is not channels_last")
        if kind == "InputLayer":
            channels = options["batch_input_shape"][-1]
            continue
        if kind == "Conv2D":
            if options.get("activation", "linear") != "linear" or options.get("dilation_rate", [1, 1]) != [1, 1]:
                raise ValueError(f"darknet-tiny port: {name} has an unsupported activation or dilation")
            kernel = weights[f"{name}/kernel"]  # (kh, kw, in, out) -> (out, in, kh, kw)
            conv = nn.Conv2d(channels, options["filters"], tuple(options["kernel_size"]),
                             padding=_same_padding(options["kernel_size"], options["strides"]), bias=options["use_bias"])
            conv.weight.data.copy_(torch.from_numpy(kernel.transpose(3, 2, 0, 1).copy()))
            if options["use_bias"]:
                conv.bias.data.copy_(torch.from_numpy(weights[f"{name}/bias"]))
            layers[name] = conv
            channels = options["filters"]
        elif kind == "BatchNormalization":
            if not (options.get("center", True) and options.get("scale", True)) or options.get("axis") not in (-1, 3, [3], [-1]):
                raise ValueError(f"darknet-tiny port: {name} is not a per-channel affine batch norm")
            norm = nn.BatchNorm2d(channels, eps=options["epsilon"])
            for tensor, key in ((norm.weight, "gamma"), (norm.bias, "beta"),
                                (norm.running_mean, "moving_mean"), (norm.running_var, "moving_variance")):
                tensor.data.copy_(torch.from_numpy(weights[f"{name}/{key}"]))
            layers[name] = norm
        elif kind == "LeakyReLU":
            layers[name] = nn.LeakyReLU(options["alpha"])
        elif kind == "MaxPooling2D":
            if options["pool_size"] != options["strides"]:
                raise ValueError(f"darknet-tiny port: {name} has overlapping windows")
            # TF "same" with stride == window pads only at the end: ceil_mode does exactly that.
            layers[name] = nn.MaxPool2d(tuple(options["pool_size"]), tuple(options["strides"]),
                                        ceil_mode=options["padding"] == "same")
        elif kind == "GlobalAveragePooling2D":
            layers[name] = _GlobalAveragePool()
        else:
            raise ValueError(f"darknet-tiny port: unsupported layer {kind} ({name})")
    return layers


class DarknetTiny(nn.Module):
    """darknet-tiny as a frozen torch network. ``forward``: RGB in [0, 1] (N, 3, H, W) -> (N, 1000)
    ImageNet logits (ml5 applies the softmax outside the model).

    It stays in eval mode (``train()`` is a no-op), so BatchNorm keeps ImageNet's statistics even
    inside a model that is being trained; gradients still flow to its input.
    """

    def __init__(self, layers: "OrderedDict[str, nn.Module]"):
        super().__init__()
        self.layers = nn.Sequential(layers)
        self.requires_grad_(False)
        super().train(False)

    @classmethod
    def load(cls, folder: str | Path | None = None) -> "DarknetTiny":
        folder = Path(folder) if folder is not None else default_models_root() / FOLDER
        model_json = json.loads(require_file(folder / "model.json", "darknet-tiny model.json").read_text())
        weights = read_tfjs_weights(folder, model_json["weightsManifest"])
        return cls(_layers_from_keras(model_json["modelTopology"]["model_config"]["config"], weights))

    def train(self, mode: bool = True) -> "DarknetTiny":
        return self  # frozen: a loss network must not update BatchNorm statistics

    @staticmethod
    def _check(images: torch.Tensor, what: str) -> None:
        if images.ndim != 4 or images.shape[1] != 3:
            raise ValueError(f"darknet-tiny takes RGB images (N, 3, H, W) {what}, got {tuple(images.shape)}")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self._check(x, "in [0, 1]")
        return self.layers(x)

    def features(self, rgb: torch.Tensor, layers: tuple[str, ...] = FEATURE_LAYERS) -> list[torch.Tensor]:
        """Activations of ``layers`` (Keras names, in network order) for RGB in [-1, 1]."""
        self._check(rgb, "in [-1, 1]")
        unknown = [name for name in layers if name not in self.layers._modules]
        if unknown:
            raise ValueError(f"darknet-tiny has no layer {unknown[0]!r}; see DarknetTiny.layers for the names")
        wanted, outputs = set(layers), {}
        x = (rgb + 1.0) * 0.5  # the original's input scale: RGB / 255
        for name, module in self.layers.named_children():
            x = module(x)
            if name in wanted:
                outputs[name] = x
                if len(outputs) == len(wanted):
                    break
        return [outputs[name] for name in layers]
