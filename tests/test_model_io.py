"""Loading the generator: bundled folder, Hub repo ids (offline here), and refusals."""

import pytest
import torch

from sketch2face import ModelLoadError
from sketch2face.networks import UNetGenerator
from sketch2face import pipeline
from sketch2face.pipeline import DEFAULT_HUB_MODEL, DEFAULT_WEIGHTS_DIR, Sketch2Face, load_generator


def test_save_pretrained_round_trip_is_safetensors_with_config(tmp_path):
    original = UNetGenerator(ngf=8, num_downs=5).eval()
    original.save_pretrained(tmp_path)
    assert (tmp_path / "model.safetensors").is_file() and (tmp_path / "config.json").is_file()
    assert not list(tmp_path.glob("*.bin")) and not list(tmp_path.glob("*.pt"))
    loaded = load_generator(tmp_path)
    assert loaded.num_downs == 5 and not loaded.training
    sketch = torch.rand(1, 1, 64, 64)
    with torch.no_grad():
        assert torch.equal(original(sketch), loaded(sketch))


def test_bundled_weights_are_the_default_and_load_offline_from_any_folder(monkeypatch, tmp_path):
    monkeypatch.delenv("SKETCH2FACE_MODEL", raising=False)
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_OFFLINE", True)
    monkeypatch.chdir(tmp_path)  # not the repository: weights/ is found beside the package
    assert (DEFAULT_WEIGHTS_DIR / "model.safetensors").is_file()
    model = Sketch2Face.from_pretrained()
    assert model.generator.canvas_size == (256, 320)


def test_without_a_checkout_the_hub_model_is_the_default_and_its_failure_is_explained(monkeypatch, tmp_path):
    monkeypatch.delenv("SKETCH2FACE_MODEL", raising=False)
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))  # empty cache
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_OFFLINE", True)
    monkeypatch.setattr(pipeline, "DEFAULT_WEIGHTS_DIR", tmp_path / "weights")  # an installed wheel: no weights/
    with pytest.raises(ModelLoadError) as error:
        Sketch2Face.from_pretrained()
    message = str(error.value)
    assert f"Could not load model '{DEFAULT_HUB_MODEL}'" in message and "HF_HUB_OFFLINE" in message
    assert f"There is no {tmp_path / 'weights'} either" in message and "SKETCH2FACE_MODEL" in message
    assert "\n" not in message


def test_folder_without_safetensors_is_refused(tmp_path):
    UNetGenerator(ngf=4, num_downs=5).save_pretrained(tmp_path)
    # A pickle checkpoint beside the config must not be picked up instead.
    (tmp_path / "model.safetensors").rename(tmp_path / "pytorch_model.bin")
    with pytest.raises(ModelLoadError, match="no model.safetensors"):
        load_generator(tmp_path)


def test_hub_repo_id_fails_fast_with_one_line_reason_when_offline(monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HOME", str(tmp_path))  # empty cache
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_OFFLINE", True)
    with pytest.raises(ModelLoadError) as error:
        load_generator("someone/sketch2face-model")
    message = str(error.value)
    assert "someone/sketch2face-model" in message and "HF_HUB_OFFLINE" in message
    assert "\n" not in message


def test_hub_repo_id_without_network_gives_a_clear_error(monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HOME", str(tmp_path))
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_OFFLINE", False)
    # Nothing listens on the discard port. huggingface_hub built its URLs from HF_ENDPOINT at import:
    # set what it built.
    monkeypatch.setattr("huggingface_hub.constants.HUGGINGFACE_CO_URL_TEMPLATE",
                        "http://127.0.0.1:9/{repo_id}/resolve/{revision}/{filename}")
    # A Space would wait out huggingface_hub's own retries (~22 s of back-off) first; the test doesn't.
    from huggingface_hub import file_download

    follow = file_download._httpx2_follow_hub_redirects_with_backoff
    monkeypatch.setattr(file_download, "_httpx2_follow_hub_redirects_with_backoff",
                        lambda *args, **kwargs: follow(*args, **{**kwargs, "retry_on_errors": False}))
    with pytest.raises(ModelLoadError, match="Could not load model 'someone/other'"):
        load_generator("someone/other")


def test_environment_variable_names_the_model(monkeypatch, tmp_path):
    UNetGenerator(ngf=4, num_downs=5).save_pretrained(tmp_path)
    monkeypatch.setenv("SKETCH2FACE_MODEL", str(tmp_path))
    assert Sketch2Face.from_pretrained().generator.num_downs == 5


def test_nonsense_model_name_is_explained():
    with pytest.raises(ModelLoadError, match="neither a folder nor"):
        load_generator("not a model")
