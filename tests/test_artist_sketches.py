"""The sketcher (photo -> artist-style sketch) and the learned sketches it gives the training set."""

import json

import cv2
import numpy as np
import pytest

from sketch2face.preprocess import CANVAS_SIZE
from sketch2face.training import artist_sketches, data
from sketch2face.training.data import LEARNED_ARTIST, FaceRecord, SketchPhotoDataset
from sketch2face.training.config import TrainConfig
from sketch2face.training.train import learned_sketches

from .test_data import tiny_data_root  # noqa: F401  (a fixture)
from .test_styles import synthetic_face


def _canvas_photo() -> np.ndarray:
    return cv2.resize(synthetic_face(), CANVAS_SIZE)


def test_colour_jitter_changes_the_light_and_keeps_the_picture():
    photo = _canvas_photo()
    rng = np.random.default_rng(0)
    jittered = [artist_sketches.jitter_colours(photo, rng) for _ in range(20)]
    assert all(each.shape == photo.shape and each.dtype == np.uint8 for each in jittered)
    assert np.mean([np.abs(each.astype(int) - photo).mean() for each in jittered]) > 5  # the light changes
    grey = cv2.cvtColor(photo, cv2.COLOR_RGB2GRAY).astype(float)
    for each in jittered:  # the picture does not: same layout of light and dark
        assert np.corrcoef(cv2.cvtColor(each, cv2.COLOR_RGB2GRAY).astype(float).ravel(), grey.ravel())[0, 1] > 0.8


def test_a_training_pair_moves_photo_and_sketch_together():
    photo = np.zeros((CANVAS_SIZE[1], CANVAS_SIZE[0], 3), np.uint8)
    sketch = np.ones((CANVAS_SIZE[1], CANVAS_SIZE[0]), np.float32)
    photo[100:120, 60:80] = 255  # one square, in both
    sketch[100:120, 60:80] = 0.0
    record = FaceRecord(name="cufs/train/x", photo=photo, sketch=sketch)
    rng = np.random.default_rng(1)
    for _ in range(5):
        moved_photo, moved_sketch = artist_sketches.training_pair(record, rng)
        bright = cv2.cvtColor(moved_photo, cv2.COLOR_RGB2GRAY) > 128
        dark = moved_sketch < 0.5
        assert (bright & dark).sum() / max(dark.sum(), 1) > 0.8


def test_a_few_sketcher_steps_lower_its_l1_and_it_draws_canvas_sketches(tiny_data_root, tmp_path):  # noqa: F811
    out = artist_sketches.train_sketcher(tmp_path / "sketcher", tiny_data_root, max_minutes=5, steps=12, batch_size=2, ngf=8)
    log = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]
    assert {"G_GAN", "G_L1", "D_real", "D_fake"} <= set(log[0])
    assert log[-1]["G_L1"] < log[0]["G_L1"]
    count = artist_sketches.draw_for_training_photos(out, tmp_path / "sketches.npz", tiny_data_root)
    drawn = artist_sketches.load(tmp_path / "sketches.npz")
    assert count == len(drawn) == 1 and set(drawn) == {"faces/london_neutral/001_03.jpg"}  # the photo, not CUFS nor canada
    sketch = drawn["faces/london_neutral/001_03.jpg"]
    assert sketch.shape == (CANVAS_SIZE[1], CANVAS_SIZE[0]) and sketch.dtype == np.float32
    assert 0.0 <= sketch.min() and sketch.max() <= 1.0


def test_photos_with_a_learned_sketch_are_shown_as_it_at_its_weight():
    photo = _canvas_photo()
    learned = np.ones((CANVAS_SIZE[1], CANVAS_SIZE[0]), np.float32)
    cv2.ellipse(learned, (128, 170), (80, 110), 0, 0, 360, 0.0, 2)
    with_sketch = FaceRecord(name="faces/london_neutral/a", photo=photo, learned_sketch=learned)
    without = FaceRecord(name="faces/london_neutral/b", photo=photo)
    dataset = SketchPhotoDataset([with_sketch, without], learned_sketch_weight=0.5)
    rng = np.random.default_rng(0)
    styles = [dataset.style_for(with_sketch, rng) for _ in range(400)]
    assert 0.4 < styles.count(LEARNED_ARTIST) / 400 < 0.6
    assert LEARNED_ARTIST not in {dataset.style_for(without, rng) for _ in range(200)}
    pair = data.make_training_pair(with_sketch, LEARNED_ARTIST, rng, augment=False)
    assert (pair.sketch < 0.5).sum() > 100  # the learned sketch's lines, framed
    plain = SketchPhotoDataset([with_sketch], learned_sketch_weight=0.0)
    assert LEARNED_ARTIST not in {plain.style_for(with_sketch, rng) for _ in range(200)}
    with pytest.raises(ValueError):
        SketchPhotoDataset([with_sketch], learned_sketch_weight=1.5)


def test_learned_sketches_must_cover_every_training_photo(tiny_data_root, tmp_path):  # noqa: F811
    records = data.build_training_records(tiny_data_root, with_landmarks=False,
                                          learned_sketches={"faces/london_neutral/001_03.jpg": np.ones((320, 256), np.float32)})
    photos = [record for record in records if record.sketch is None]
    assert photos and all(record.learned_sketch is not None for record in photos)
    assert all(record.learned_sketch is None for record in records if record.sketch is not None)
    with pytest.raises(SystemExit, match="none for 1 training photos"):
        data.build_training_records(tiny_data_root, with_landmarks=False, learned_sketches={"someone/else": np.ones((320, 256))})
    with pytest.raises(SystemExit, match="does not exist"):
        learned_sketches(TrainConfig(artist_sketches=str(tmp_path / "missing.npz")))
    assert learned_sketches(TrainConfig()) is None


def test_the_sketcher_checkpoints_and_resumes_where_it_stopped(tiny_data_root, tmp_path):  # noqa: F811
    import torch
    from safetensors.torch import load_file

    out = tmp_path / "sketcher"
    settings = dict(max_minutes=5, batch_size=2, ngf=8)
    artist_sketches.train_sketcher(out, tiny_data_root, steps=4, checkpoint_every=2, **settings)
    state = torch.load(out / "checkpoint.pt", map_location="cpu", weights_only=False)
    assert state["step"] == 4 and state["spent_s"] > 0
    first_log = (out / "log.jsonl").read_text()

    # Nothing left to do: the exported sketcher is the checkpoint's, and the log is kept.
    artist_sketches.train_sketcher(out, tiny_data_root, steps=4, resume=True, **settings)
    exported = load_file(out / "model.safetensors")
    assert all(torch.equal(exported[name], tensor) for name, tensor in state["sketcher"].items() if name in exported)
    assert (out / "log.jsonl").read_text() == first_log

    # Two more steps carry on from step 4 with the saved optimisers, not from a fresh start.
    artist_sketches.train_sketcher(out, tiny_data_root, steps=6, resume=True, **settings)
    resumed = torch.load(out / "checkpoint.pt", map_location="cpu", weights_only=False)
    assert resumed["step"] == 6 and resumed["spent_s"] >= state["spent_s"]
    assert json.loads((out / "summary.json").read_text())["steps"] == 6
    assert (out / "log.jsonl").read_text().startswith(first_log)
    adam_steps = {int(each["step"]) for each in resumed["optimise_g"]["state"].values()}
    assert adam_steps == {6}

    with pytest.raises(SystemExit, match="other settings"):
        artist_sketches.train_sketcher(out, tiny_data_root, steps=8, resume=True, max_minutes=5, batch_size=3, ngf=8)
