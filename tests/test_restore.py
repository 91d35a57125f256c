"""GFPGAN restoration: weights (local, cached, downloaded, refused), alignment, the fast forward,
and the pipeline's enhance path. The network is a real GFPGANv1Clean at 512 px, only narrower
(narrow=1/16) with random weights, so everything runs the production code path in seconds."""

from __future__ import annotations

import hashlib
import http.server
import socket
import threading
from pathlib import Path

import numpy as np
import pytest
import torch
from skimage.metrics import peak_signal_noise_ratio

from sketch2face import Sketch2Face, preprocess
from sketch2face.errors import Sketch2FaceError
from sketch2face.fastpath_gfpgan import FastGFPGAN
from sketch2face.restore import FaceRestorer, RestorationUnavailable, restorer as restorer_module, weights
from sketch2face.restore.alignment import (
    CANVAS_FACE_POINTS,
    CANVAS_TO_TEMPLATE,
    GFPGAN_TEMPLATE_5,
    crop_to_template,
    face_to_template,
    landmarks_to_template,
    paste_back,
)
from sketch2face.restore.network import infer_config, stock_forward
from sketch2face.restore.weights import CHECKPOINT_NAME, download_checkpoint

from .drawings import drawing

SMALL_CONFIG = {
    "out_size": 512,
    "num_style_feat": 64,
    "channel_multiplier": 2,
    "decoder_load_path": None,
    "fix_decoder": False,
    "num_mlp": 2,
    "input_is_latent": True,
    "different_w": True,
    "narrow": 0.0625,
    "sft_half": True,
}
# GFPGAN v1.4's own configuration (the released checkpoint).
V14_CONFIG = dict(SMALL_CONFIG, num_style_feat=512, num_mlp=8, narrow=1)


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    return float(peak_signal_noise_ratio(a, b, data_range=255))


@pytest.fixture(autouse=True)
def isolated_environment(monkeypatch, tmp_path):
    """No real cache, no env overrides, offline, fixed alignment: each test opts into what it needs."""
    monkeypatch.setenv("SKETCH2FACE_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("SKETCH2FACE_GFPGAN_PATH", raising=False)
    monkeypatch.delenv("SKETCH2FACE_GFPGAN_URL", raising=False)
    set_offline(monkeypatch, True)
    monkeypatch.setenv("SKETCH2FACE_GFPGAN_ALIGN", "fixed")  # dlib (1.5 s to load) only where a test asks


def set_offline(monkeypatch, offline: bool) -> None:
    """huggingface_hub reads HF_HUB_OFFLINE once, at import: set what it read."""
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_OFFLINE", offline)


@pytest.fixture(scope="module")
def small_network():
    from gfpgan.archs.gfpganv1_clean_arch import GFPGANv1Clean

    torch.manual_seed(0)
    network = GFPGANv1Clean(**SMALL_CONFIG).eval()
    with torch.no_grad():  # noise strengths start at 0: make the noise path matter
        for name, parameter in network.named_parameters():
            if name.endswith(".weight") and parameter.numel() == 1:
                parameter.fill_(0.1)
    return network


@pytest.fixture(scope="module")
def small_checkpoint(small_network, tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("gfpgan") / "small-gfpgan.pth"
    torch.save({"params_ema": small_network.state_dict()}, path)
    return path


@pytest.fixture(scope="module")
def generated_face(tiny_pipeline) -> np.ndarray:
    """What the pipeline hands the restorer: a generator face on the 256x320 canvas."""
    return tiny_pipeline.generate_canvas(preprocess.normalise(drawing()).canvas)


# -- architecture and the fast forward --------------------------------------------------------


def test_architecture_is_read_off_the_weights():
    from gfpgan.archs.gfpganv1_clean_arch import GFPGANv1Clean

    for config in (SMALL_CONFIG, V14_CONFIG, dict(SMALL_CONFIG, channel_multiplier=1, different_w=False, sft_half=False)):
        with torch.device("meta"):  # shapes only: the full 86M-parameter v1.4 costs nothing
            state_dict = GFPGANv1Clean(**config).state_dict()
        assert infer_config(state_dict) == config
    with pytest.raises(ValueError, match="not a GFPGANv1Clean"):
        infer_config({"weight": torch.zeros(1)})


def test_fast_forward_equals_the_stock_forward(small_network):
    image = torch.rand(1, 3, 512, 512, generator=torch.Generator().manual_seed(1)) * 2 - 1
    before = {name: (tensor.clone(), tensor.stride()) for name, tensor in small_network.state_dict().items()}
    with torch.inference_mode():
        expected = stock_forward(small_network, image)
        fast = FastGFPGAN(small_network).eval()
        restored = fast(image)
    for name, tensor in small_network.state_dict().items():  # the stock network stays usable as is
        assert torch.equal(tensor, before[name][0]) and tensor.stride() == before[name][1], name
    assert restored.shape == expected.shape == (1, 3, 512, 512)
    assert expected.abs().max() > 0.5  # a real signal, not all zeros
    torch.testing.assert_close(restored, expected, atol=1e-4, rtol=1e-4)


# -- alignment ------------------------------------------------------------------------------


def test_canvas_landmarks_land_on_the_gfpgan_template():
    canvas = np.zeros((320, 256, 3), np.uint8)
    for x, y in CANVAS_FACE_POINTS:
        canvas[int(round(y)) - 1 : int(round(y)) + 2, int(round(x)) - 1 : int(round(x)) + 2] = 255
    crop = crop_to_template(canvas)
    assert crop.shape == (512, 512, 3)
    for (x, y), (tx, ty) in zip(CANVAS_FACE_POINTS, GFPGAN_TEMPLATE_5):
        window = crop[int(ty) - 20 : int(ty) + 21, int(tx) - 20 : int(tx) + 21, 0].astype(float)
        assert window.sum() > 0, "landmark fell outside its template neighbourhood"
        dy, dx = np.unravel_index(np.argmax(window), window.shape)
        # A similarity transform can't match 5 points exactly: the fit residual is up to ~10 px.
        assert np.hypot(dx - 20, dy - 20) < 12


def test_paste_back_of_an_untouched_crop_is_the_upscaled_face(generated_face):
    import cv2

    upscaled = cv2.resize(generated_face, (512, 640), interpolation=cv2.INTER_LANCZOS4)
    round_trip = paste_back(generated_face, crop_to_template(generated_face))
    assert round_trip.shape == (640, 512, 3) and round_trip.dtype == np.uint8
    # The crop is resampled twice (into the template and back): close, not exact (42.7 dB), and
    # aligned to the pixel: half a canvas pixel off would give 34.4 dB.
    assert psnr(round_trip, upscaled) > 40
    np.testing.assert_array_equal(round_trip[:40], upscaled[:40])  # above the template: no blend


def _apply(matrix: np.ndarray, points: np.ndarray) -> np.ndarray:
    return points @ matrix[:, :2].T + matrix[:, 2]


def test_landmark_alignment_moves_with_the_face_and_rejects_nonsense():
    canonical = CANVAS_FACE_POINTS  # at 256x320, pixel coordinates are canvas coordinates
    np.testing.assert_allclose(landmarks_to_template(canonical, 320, 256), face_to_template(320, 256), atol=1e-6)
    shifted = canonical + [6.0, -12.0]
    expected = _apply(face_to_template(320, 256), canonical)
    np.testing.assert_allclose(_apply(landmarks_to_template(shifted, 320, 256), shifted), expected, atol=1e-6)
    # At 2x the same face is the same framing: landmarks in 2x pixels give the same template points.
    doubled = (canonical + 0.5) * 2 - 0.5
    expected = _apply(CANVAS_TO_TEMPLATE, canonical)
    np.testing.assert_allclose(_apply(landmarks_to_template(doubled, 640, 512), doubled), expected, atol=1e-6)
    centre = canonical.mean(0)
    for implausible in (canonical + [0.0, 80.0], (canonical - centre) * 2 + centre, (canonical - centre) * [1, -1] + centre):
        assert landmarks_to_template(implausible, 320, 256) is None


def test_dlib_landmarks_track_a_generated_face(small_checkpoint):
    """With the optional dlib extra and the project's trained generator: alignment follows the face."""
    import cv2

    import importlib.util

    pytest.importorskip("dlib")
    if importlib.util.find_spec("face_recognition_models") is None:  # its import needs pkg_resources: don't
        pytest.skip("face-recognition-models is not installed")
    from sketch2face import ModelLoadError

    example = Path(__file__).resolve().parent.parent / "examples" / "01_short_hair.png"
    try:
        model = Sketch2Face.from_pretrained()
    except ModelLoadError:
        pytest.skip("no trained generator in weights/")
    if not example.exists():
        pytest.skip("examples/ not generated")
    face = model.generate_canvas(preprocess.normalise(example).canvas)
    restorer = FaceRestorer(checkpoint=small_checkpoint, alignment="auto")
    restorer.load()
    matrix, how = restorer.align(face)
    assert how == "landmarks", "dlib found no plausible face in the generator's output"
    shift = np.array([[1.0, 0.0, 7.0], [0.0, 1.0, -9.0]])
    moved = cv2.warpAffine(face, shift, (256, 320), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    moved_matrix, how = restorer.align(moved)
    assert how == "landmarks"
    # The same facial points land on the same template spots (up to landmark noise).
    points = CANVAS_FACE_POINTS[:2]
    error = np.linalg.norm(_apply(moved_matrix, points + [7.0, -9.0]) - _apply(matrix, points), axis=1)
    assert error.max() < 6
    assert restorer.restore(face).shape == (640, 512, 3)


# -- the restorer ---------------------------------------------------------------------------


def test_restore_end_to_end(small_checkpoint, generated_face):
    import cv2

    restorer = FaceRestorer(checkpoint=small_checkpoint, alignment="fixed")
    assert not restorer.loaded  # construction is free
    restored = restorer.restore(generated_face)
    assert restorer.loaded
    assert restored.shape == (640, 512, 3) and restored.dtype == np.uint8
    assert restored.std() > 1
    upscaled = cv2.resize(generated_face, (512, 640), interpolation=cv2.INTER_LANCZOS4)
    np.testing.assert_array_equal(restored[:40], upscaled[:40])  # hair above the template: upscaled only
    centre = (slice(250, 450), slice(150, 360))  # eyes to mouth: GFPGAN's output (random weights)
    assert np.abs(restored[centre].astype(int) - upscaled[centre]).mean() > 5
    # Optimised and stock agree (the concurrency test checks repeat runs are identical).
    stock = FaceRestorer(checkpoint=small_checkpoint, optimized=False, alignment="fixed").restore(generated_face)
    assert np.abs(stock.astype(int) - restored).max() <= 1


def test_pipeline_enhance_uses_the_restorer(tiny_model_dir, small_checkpoint):
    model = Sketch2Face.from_pretrained(tiny_model_dir, restorer=FaceRestorer(checkpoint=small_checkpoint))
    plain = model.generate(drawing())
    enhanced = model.generate(drawing(), enhance=True)
    assert enhanced.enhanced and not plain.enhanced
    assert not any("restoration" in note for note in enhanced.notes)
    # GFPGAN's face is 2x the canvas: the drawing comes back at that resolution (at least its own size).
    sketch = preprocess.normalise(drawing())
    assert enhanced.image.size == preprocess.output_size(sketch, 2.0, at_least_input=True)
    assert enhanced.image.size[0] > plain.image.size[0] == preprocess.output_size(sketch, at_least_input=True)[0]


def test_offline_without_weights_returns_the_unrestored_face_with_a_note(tiny_model_dir, monkeypatch):
    def no_download(*args, **kwargs):
        raise AssertionError("offline mode must not try to download")

    monkeypatch.setattr(weights, "download_checkpoint", no_download)
    model = Sketch2Face.from_pretrained(tiny_model_dir)  # the default restorer, as the app builds it
    result = model.generate(drawing(), enhance=True)
    assert not result.enhanced
    assert any(note.startswith("Face restoration skipped") and "offline" in note for note in result.notes)
    assert np.array_equal(np.asarray(result.image), np.asarray(model.generate(drawing()).image))


def test_unreachable_download_times_out_and_is_not_retried_per_request(monkeypatch, generated_face):
    set_offline(monkeypatch, False)
    monkeypatch.setattr(weights, "READ_TIMEOUT_S", 1.0)
    attempts = []
    real_download = weights.download_checkpoint

    def counted_download(*args, **kwargs):
        attempts.append(args)
        return real_download(*args, **kwargs)

    monkeypatch.setattr(weights, "download_checkpoint", counted_download)
    # A server that accepts connections and never answers: only the read timeout ends the wait.
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(8)
    try:
        url = f"http://127.0.0.1:{silent.getsockname()[1]}/{CHECKPOINT_NAME}"
        restorer = FaceRestorer(url=url)
        with pytest.raises(RestorationUnavailable, match="Could not download .*timed out") as caught:
            restorer.restore(generated_face)
        assert isinstance(caught.value, Sketch2FaceError) and "\n" not in str(caught.value)
        with pytest.raises(RestorationUnavailable, match="Could not download"):
            restorer.restore(generated_face)  # remembered: no second attempt
        assert len(attempts) == 1
    finally:
        silent.close()
    assert not list(weights.cache_dir().glob("*")), "left a partial download behind"


@pytest.fixture
def file_server(tmp_path):
    """Serves tmp_path/served over HTTP on 127.0.0.1; yields (folder, base_url)."""
    folder = tmp_path / "served"
    folder.mkdir()

    class QuietHandler(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, directory=str(folder), **kwargs)

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), QuietHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield folder, f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def test_download_checks_sha256_and_renames_atomically(file_server, tmp_path):
    folder, base_url = file_server
    payload = np.random.default_rng(0).bytes(300_000)
    (folder / "weights.pth").write_bytes(payload)
    destination = tmp_path / "cache" / "weights.pth"
    digest = hashlib.sha256(payload).hexdigest()

    with pytest.raises(RestorationUnavailable, match="sha256"):
        download_checkpoint(f"{base_url}/weights.pth", destination, expected_sha256="0" * 64, expected_bytes=len(payload))
    assert not destination.exists() and not list(destination.parent.glob("*")), "kept a rejected or partial file"

    with pytest.raises(RestorationUnavailable, match="larger"):
        download_checkpoint(f"{base_url}/weights.pth", destination, expected_sha256=digest, expected_bytes=1000)
    assert not list(destination.parent.glob("*"))

    with pytest.raises(RestorationUnavailable, match="HTTP 404"):
        download_checkpoint(f"{base_url}/missing.pth", destination, expected_sha256=digest, expected_bytes=len(payload))

    downloaded = download_checkpoint(f"{base_url}/weights.pth", destination, expected_sha256=digest, expected_bytes=len(payload))
    assert downloaded == destination
    assert destination.read_bytes() == payload
    assert [path.name for path in destination.parent.iterdir()] == ["weights.pth"]


def test_restorer_refuses_a_download_that_is_not_the_official_file(monkeypatch, file_server, small_checkpoint, generated_face):
    folder, base_url = file_server
    (folder / CHECKPOINT_NAME).write_bytes(small_checkpoint.read_bytes())  # a valid checkpoint, but not v1.4
    set_offline(monkeypatch, False)
    monkeypatch.setenv("SKETCH2FACE_GFPGAN_URL", f"{base_url}/{CHECKPOINT_NAME}")
    with pytest.raises(RestorationUnavailable, match="sha256"):
        FaceRestorer().restore(generated_face)
    assert not (weights.cache_dir() / CHECKPOINT_NAME).exists()


def test_cached_file_with_the_wrong_sha256_is_refused(small_checkpoint, generated_face):
    cached = weights.cache_dir() / CHECKPOINT_NAME
    cached.parent.mkdir(parents=True)
    cached.write_bytes(small_checkpoint.read_bytes())
    with pytest.raises(RestorationUnavailable, match="sha256"):
        FaceRestorer().restore(generated_face)
    assert cached.exists()  # not silently deleted: the message says what to do


def test_local_checkpoint_from_the_environment(monkeypatch, small_checkpoint, generated_face, tmp_path):
    monkeypatch.setenv("SKETCH2FACE_GFPGAN_PATH", str(small_checkpoint))
    assert FaceRestorer().restore(generated_face).shape == (640, 512, 3)  # no sha256 pin for a user's file

    later = tmp_path / "later.pth"
    monkeypatch.setenv("SKETCH2FACE_GFPGAN_PATH", str(later))
    restorer = FaceRestorer()
    with pytest.raises(RestorationUnavailable, match="SKETCH2FACE_GFPGAN_PATH"):
        restorer.restore(generated_face)
    later.write_bytes(small_checkpoint.read_bytes())  # a local problem, once fixed, is not remembered
    assert restorer.restore(generated_face).shape == (640, 512, 3)


class NotWeights:
    """Pickled code in a checkpoint: weights_only loading must refuse it."""


@pytest.mark.parametrize(
    "content",
    [b"not a checkpoint at all", "truncated", "pickled code", "wrong tensors"],
)
def test_unusable_checkpoints_are_refused_with_a_reason(content, small_checkpoint, generated_face, tmp_path):
    path = tmp_path / "bad.pth"
    if content == "truncated":
        path.write_bytes(small_checkpoint.read_bytes()[:5000])
    elif content == "pickled code":
        torch.save({"params_ema": NotWeights()}, path)
    elif content == "wrong tensors":
        torch.save({"params_ema": {"conv.weight": torch.zeros(3, 3)}}, path)
    else:
        path.write_bytes(content)
    with pytest.raises(RestorationUnavailable, match="Could not load the GFPGAN checkpoint") as caught:
        FaceRestorer(checkpoint=path).restore(generated_face)
    assert "\n" not in str(caught.value)


def test_faces_it_cannot_align_raise_instead_of_crashing(small_checkpoint):
    restorer = FaceRestorer(checkpoint=small_checkpoint)
    for bad in (np.zeros((100, 300, 3), np.uint8), np.zeros((320, 256, 3), np.float32), np.zeros((320, 256), np.uint8)):
        with pytest.raises(RestorationUnavailable):
            restorer.restore(bad)
    assert not restorer.loaded  # rejected before loading anything
    # Any multiple of the canvas is the same framing.
    assert restorer.restore(np.full((160, 128, 3), 128, np.uint8)).shape == (320, 256, 3)


def test_concurrent_requests_share_one_lazily_loaded_model(monkeypatch, small_checkpoint, generated_face):
    loads = []
    real_load = restorer_module.load_gfpgan
    requests = [threading.Event() for _ in range(3)]  # set by each request as it starts

    def counting_load(*args, **kwargs):
        loads.append(1)
        for started in requests:  # hold the load until every request is in flight
            assert started.wait(timeout=60)
        return real_load(*args, **kwargs)

    monkeypatch.setattr(restorer_module, "load_gfpgan", counting_load)
    restorer = FaceRestorer(checkpoint=small_checkpoint)
    results: list[np.ndarray] = []
    errors: list[BaseException] = []

    def request(started: threading.Event):
        try:
            started.set()
            results.append(restorer.restore(generated_face))
        except BaseException as error:  # noqa: BLE001  surfaced by the asserts below
            errors.append(error)

    threads = [threading.Thread(target=request, args=(started,)) for started in requests]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not errors and len(results) == 3
    assert len(loads) == 1
    assert all(np.array_equal(result, results[0]) for result in results)
