"""Data loading rules. Uses ../shared/data when present (CI has it), else builds a tiny copy."""

import csv

import cv2
import numpy as np
import pytest
import torch

from sketch2face import preprocess
from sketch2face.training import data
from sketch2face.training.data import FaceRecord, SketchPhotoDataset

from .test_styles import landmarks_for, synthetic_face


@pytest.fixture
def tiny_data_root(tmp_path):
    """A data folder in the shared layout, with images drawn here."""
    for split in ("train", "test"):
        for kind in ("photos", "sketches"):
            (tmp_path / "cufs" / split / kind).mkdir(parents=True)
    photo = cv2.resize(synthetic_face(), (200, 250))
    sketch = cv2.cvtColor(photo, cv2.COLOR_RGB2GRAY)
    for name in ("a-001", "a-002"):
        cv2.imwrite(str(tmp_path / "cufs/train/photos" / f"{name}.jpg"), photo)
        cv2.imwrite(str(tmp_path / "cufs/train/sketches" / f"{name}.jpg"), sketch)
    faces = tmp_path / "faces"
    for folder in ("london_neutral", "canada"):
        (faces / folder).mkdir(parents=True)
    big = cv2.resize(synthetic_face(), (512, 640))
    cv2.imwrite(str(faces / "london_neutral/001_03.jpg"), big)
    cv2.imwrite(str(faces / "canada/003f.jpg"), big)
    with open(faces / "eyes.csv", "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["file", "eye1_x", "eye1_y", "eye2_x", "eye2_y"])
        writer.writerow(["london_neutral/001_03.jpg", 312.0, 326.0, 200.0, 326.0])  # right eye listed first
        writer.writerow(["canada/003f.jpg", 200.0, 326.0, 312.0, 326.0])
    return tmp_path


def test_held_out_data_is_refused(tiny_data_root):
    with pytest.raises(ValueError, match="held out"):
        data.load_cufs("test", tiny_data_root)
    with pytest.raises(ValueError, match="held out"):
        data.load_faces(("canada",), tiny_data_root)
    assert len(data.load_faces(("canada",), tiny_data_root, allow_held_out=True)) == 1


def test_training_records_never_include_held_out_files(tiny_data_root):
    records = data.build_training_records(tiny_data_root, with_landmarks=False)
    names = [record.name for record in records]
    assert names == ["cufs/train/a-001", "cufs/train/a-002", "faces/london_neutral/001_03.jpg"]
    assert not any("canada" in name or "test" in name for name in names)


def test_cufs_validation_pairs_are_kept_out_of_training(tiny_data_root):
    records = data.build_training_records(tiny_data_root, with_landmarks=False, cufs_validation_every=2)
    assert [record.name for record in records] == ["cufs/train/a-001", "faces/london_neutral/001_03.jpg"]
    # Every 8th of the 88 real pairs: 11 kept out, the same ones every time, the rest trained on.
    kept_out = [index for index in range(88) if data.is_cufs_validation(index, 8)]
    assert kept_out == list(range(7, 88, 8)) and len(kept_out) == 11
    assert not any(data.is_cufs_validation(index, 0) for index in range(88))


def test_eye_alignment_puts_pupils_on_the_canvas_eyes(tiny_data_root):
    matrix = data.eye_alignment((200.0, 326.0), (312.0, 326.0))
    for source, target in zip([(200.0, 326.0), (312.0, 326.0)], preprocess.CANVAS_EYES):
        mapped = matrix @ np.array([*source, 1.0])
        assert np.allclose(mapped, target, atol=1e-6)
    record = data.load_faces(root=tiny_data_root)[0]
    assert record.photo.shape == (320, 256, 3)


def test_dataset_yields_normalised_pairs_in_every_style():
    photo = synthetic_face()
    record = FaceRecord("synthetic", photo, sketch=cv2.cvtColor(photo, cv2.COLOR_RGB2GRAY) / 255.0,
                        landmarks=landmarks_for(photo))
    rng = np.random.default_rng(0)
    for style in ("artist", "pencil", "xdog", "edges", "doodle"):
        sketch, target, mask, points = data.make_training_pair(record, style, rng)
        assert sketch.shape == (320, 256) and target.shape == (320, 256, 3) and mask.shape == (320, 256)
        assert points.shape == (5, 2) and points.dtype == np.float32
        # The same normalisation as serving: paper white, ink black after the level stretch.
        assert np.percentile(sketch, 90) > 0.95 and sketch.min() < 0.1
    item = SketchPhotoDataset([record])[0]
    assert item["sketch"].shape == (1, 320, 256) and item["photo"].shape == (3, 320, 256)
    assert item["face_mask"].shape == (1, 320, 256) and item["face_mask"].max() == 1.0
    assert item["sketch"].min() >= -1 and item["photo"].max() <= 1 and item["photo"].dtype == torch.float32
    assert item["five_points"].shape == (5, 2) and item["identity_mask"].item() is True
    assert SketchPhotoDataset([FaceRecord("no landmarks", photo, sketch=record.sketch)])[0]["identity_mask"].item() is False


def test_identity_and_pixel_masks_can_leave_doodles_out():
    photo = synthetic_face()
    record = FaceRecord("synthetic", photo, sketch=cv2.cvtColor(photo, cv2.COLOR_RGB2GRAY) / 255.0,
                        landmarks=landmarks_for(photo))

    class OneStyle(SketchPhotoDataset):
        def __init__(self, style, **options):
            super().__init__([record], **options)
            self.style = style

        def style_for(self, record, rng):
            return self.style

    assert OneStyle("doodle")[0]["identity_mask"].item() is True  # default: every sample with points
    assert OneStyle("doodle", identity_on_doodles=False)[0]["identity_mask"].item() is False
    for style in ("artist", "pencil", "edges"):
        item = OneStyle(style, identity_on_doodles=False)[0]
        assert item["identity_mask"].item() is True and item["five_points"].abs().sum() > 0

    # The pixel terms' switch is separate: doodles only.
    assert OneStyle("doodle")[0]["pixel_mask"].item() is True
    assert OneStyle("doodle", l1_on_doodles=False)[0]["pixel_mask"].item() is False
    assert OneStyle("doodle", l1_on_doodles=False)[0]["identity_mask"].item() is True
    for style in ("artist", "pencil", "xdog", "edges"):
        assert OneStyle(style, l1_on_doodles=False)[0]["pixel_mask"].item() is True
    # G_teacher's mask marks the doodles, whatever the other switches say.
    assert OneStyle("doodle", identity_on_doodles=False, l1_on_doodles=False)[0]["doodle_mask"].item() is True
    for style in ("artist", "pencil", "xdog", "edges"):
        assert OneStyle(style)[0]["doodle_mask"].item() is False


def test_training_pair_photo_follows_the_sketch_framing():
    """A sketch shrunk into a corner is re-framed; the photo must move with it."""
    photo = synthetic_face()
    sketch = np.ones((320, 256), np.float32)
    cv2.ellipse(sketch, (60, 60), (30, 40), 0, 0, 360, 0.0, 2)
    record = FaceRecord("corner", photo, sketch=sketch)
    framed_sketch, framed_photo, _, points = data.make_training_pair(record, "artist", np.random.default_rng(0), augment=False)
    assert points is None  # no landmarks, no five points
    ys, xs = np.nonzero(framed_sketch < 0.5)
    assert abs(xs.mean() - 128) < 10 and abs(ys.mean() - 160) < 10  # centred on the canvas
    expected = preprocess.warp_to_canvas(photo, preprocess.normalise(sketch).to_canvas)
    assert np.array_equal(framed_photo, expected)


def test_face_mask_covers_the_inner_face_and_is_empty_without_landmarks():
    photo = synthetic_face()
    mask = data.face_mask(landmarks_for(photo), photo.shape[:2])
    assert mask.dtype == np.float32 and set(np.unique(mask)) == {0.0, 1.0}
    for x, y in ((100, 163), (156, 163), (128, 230), (128, 140)):  # eyes, mouth, brow line
        assert mask[y, x] == 1.0
    for x, y in ((128, 20), (10, 160), (245, 160), (128, 300)):  # hair, background, below the chin
        assert mask[y, x] == 0.0
    assert not data.face_mask(None, (320, 256)).any()


def test_face_mask_moves_with_the_photo_through_flips_affines_and_framing():
    """Paint the masked region red in the photo: after any augmentation the two must still agree."""
    photo = synthetic_face()
    landmarks = landmarks_for(photo)
    landmarks[:, 0] -= 40  # off-centre, so a flip or a reframing would show
    painted = photo.copy()
    painted[data.face_mask(landmarks, photo.shape[:2]) > 0] = (255, 0, 0)
    sketch = np.ones((320, 256), np.float32)
    cv2.ellipse(sketch, (70, 140), (40, 55), 0, 0, 360, 0.0, 2)  # small and off-centre: gets reframed
    record = FaceRecord("painted", painted, sketch=sketch, landmarks=landmarks)
    for seed in range(6):
        pair = data.make_training_pair(record, "artist", np.random.default_rng(seed), augment=True)
        red = (pair.photo[..., 0] > 200) & (pair.photo[..., 1] < 60) & (pair.photo[..., 2] < 60)
        masked = pair.face_mask > 0.5
        overlap = (red & masked).sum() / (red | masked).sum()
        assert red.sum() > 2000 and overlap > 0.95, (seed, overlap)


@pytest.mark.skipif(not (data.default_data_root() / "cufs").is_dir(), reason="../shared/data is not present")
def test_real_training_set_sizes():
    """Without dlib's landmarks, london_smiling (no pupils in eyes.csv) can't be aligned: 88 + 212."""
    records = data.build_training_records(with_landmarks=False)
    assert sum(r.name.startswith("cufs/train") for r in records) == 88
    assert sum(r.name.startswith("faces/") for r in records) == 212
    assert all(r.photo.shape == (320, 256, 3) for r in records)


@pytest.mark.skipif(not (data.default_data_root() / "faces" / "london_smiling").is_dir(), reason="../shared/data is not present")
def test_london_smiling_records_are_aligned_by_their_landmarks_and_carry_five_points():
    pytest.importorskip("dlib")
    records = data.load_landmark_aligned_faces(limit=3, output_scale=2)
    assert [record.name for record in records] == [f"faces/london_smiling/{path.name}" for path in
                                                   sorted((data.default_data_root() / "faces/london_smiling").glob("*.jpg"))[:3]]
    for record in records:
        assert record.photo.shape == (320, 256, 3) and record.photo_full.shape == (640, 512, 3)
        points = data.five_points(record.landmarks)
        assert np.allclose(points[:2], preprocess.CANVAS_EYES, atol=0.5)  # aligned by these very eyes
        assert points[0, 1] < points[2, 1] < points[3, 1]  # eyes above the nose tip above the mouth
        pair = data.make_training_pair(record, "doodle", np.random.default_rng(0), output_scale=2)
        assert pair.photo.shape == (640, 512, 3) and pair.five_points.shape == (5, 2)
        assert ((pair.five_points >= 0) & (pair.five_points < [512, 640])).all()
    # build_training_records takes them in (with landmarks), never anything held out
    names = [record.name for record in data.build_training_records(limit=1)]
    assert sum("london_smiling" in name for name in names) == 1
    assert not any("canada" in name or "cufs/test" in name for name in names)


def _painted_points(photo: np.ndarray, points: np.ndarray) -> np.ndarray:
    """The photo with each of the five points painted in its own pure colour."""
    painted = photo.copy()
    for colour, (x, y) in zip(FIVE_COLOURS, np.round(points).astype(int)):
        cv2.circle(painted, (int(x), int(y)), 4, colour, -1)
    return painted


FIVE_COLOURS = [(255, 0, 0), (0, 255, 0), (0, 0, 255), (255, 255, 0), (255, 0, 255)]


@pytest.mark.parametrize("output_scale", [1, 2])
def test_five_points_follow_the_photo_through_flips_affines_framing_and_scale(output_scale):
    """Paint each point in the photo: after any augmentation the carried points sit on their own
    colour, eyes and mouth corners swapping sides with a flip (image left stays first)."""
    photo = synthetic_face()
    landmarks = landmarks_for(photo)
    landmarks[:, 0] -= 30  # off-centre, so a flip or a reframing would show
    points = data.five_points(landmarks)
    painted = _painted_points(photo, points)
    full = _painted_points(cv2.resize(photo, (512, 640), interpolation=cv2.INTER_CUBIC), points * 2 + 0.5)
    record = FaceRecord("painted", painted, landmarks=landmarks, photo_full=full)
    flipped_samples = 0
    for seed in range(8):
        rng = np.random.default_rng(seed)
        style = ("doodle", "edges")[seed % 2]  # doodles get the wider placement
        pair = data.make_training_pair(record, style, rng, augment=True, output_scale=output_scale)
        assert pair.photo.shape == (320 * output_scale, 256 * output_scale, 3)
        found = []
        for x, y in np.round(pair.five_points).astype(int):
            colour = pair.photo[y, x].astype(int)
            found.append([index for index, other in enumerate(FIVE_COLOURS) if np.abs(colour - other).max() < 60])
        # Unflipped, each point sits on its own colour; flipped, on its mirror partner's.
        assert found in ([[0], [1], [2], [3], [4]], [[1], [0], [2], [4], [3]]), (seed, found)
        flipped_samples += found[0] == [1]
        assert pair.five_points[0, 0] < pair.five_points[1, 0]  # image-left eye first, flipped or not
    assert 0 < flipped_samples < 8


def test_full_size_pairs_use_the_full_resolution_photo():
    """At output_scale 2 the target comes from photo_full, not from the canvas photo blown up."""
    photo = synthetic_face()
    stripes = cv2.resize(photo, (512, 640), interpolation=cv2.INTER_CUBIC)
    stripes[:, ::2] = 0  # 1-pixel detail that a 256x320 photo can't hold
    record = FaceRecord("full", photo, sketch=cv2.cvtColor(photo, cv2.COLOR_RGB2GRAY) / 255.0, photo_full=stripes)
    pair = data.make_training_pair(record, "artist", np.random.default_rng(0), augment=False, output_scale=2)
    assert pair.photo.shape == (640, 512, 3) and pair.face_mask.shape == (640, 512)
    detail = lambda image: np.abs(np.diff(image.astype(float), axis=1)).mean()  # noqa: E731
    assert detail(pair.photo) > 5 * detail(cv2.resize(photo, (512, 640), interpolation=cv2.INTER_CUBIC))
    blown_up = data.make_training_pair(FaceRecord("canvas only", photo, sketch=record.sketch), "artist",
                                       np.random.default_rng(0), augment=False, output_scale=2)
    assert blown_up.photo.shape == (640, 512, 3) and detail(blown_up.photo) < detail(pair.photo) / 5


def test_cufs_repeats_and_artist_weight_set_the_style_mix():
    photo = synthetic_face()
    cufs = FaceRecord("cufs/train/x", photo, sketch=cv2.cvtColor(photo, cv2.COLOR_RGB2GRAY) / 255.0)
    other = FaceRecord("faces/y", photo)
    dataset = SketchPhotoDataset([cufs, other], cufs_repeats=3, artist_weight=0.9)
    assert [record.name for record in dataset.records] == ["cufs/train/x"] * 3 + ["faces/y"]
    assert abs(sum(dataset.cufs_weights.values()) - 1.0) < 1e-9
    rng = np.random.default_rng(0)
    drawn = [dataset.style_for(cufs, rng) for _ in range(2000)]
    assert 0.87 < drawn.count("artist") / len(drawn) < 0.93
    assert "artist" not in {dataset.style_for(other, rng) for _ in range(200)}  # photos have no artist sketch
    # The default leaves the documented mix untouched.
    assert SketchPhotoDataset([cufs]).cufs_weights == data.CUFS_STYLE_WEIGHTS
    with pytest.raises(ValueError):
        SketchPhotoDataset([cufs], artist_weight=1.5)
    with pytest.raises(ValueError):
        SketchPhotoDataset([cufs], cufs_repeats=0)


def test_a_style_mix_draws_only_its_styles_for_every_record():
    photo = synthetic_face()
    cufs = FaceRecord("cufs/train/x", photo, sketch=cv2.cvtColor(photo, cv2.COLOR_RGB2GRAY) / 255.0)
    other = FaceRecord("faces/y", photo)
    mix = data.parse_style_mix("doodle=0.75, edges=0.25")
    assert mix == {"doodle": 0.75, "edges": 0.25}
    dataset = SketchPhotoDataset([cufs, other], artist_weight=0.9, style_mix=mix)  # the mix wins over artist_weight
    rng = np.random.default_rng(0)
    for record in (cufs, other):
        drawn = [dataset.style_for(record, rng) for _ in range(2000)]
        assert set(drawn) == {"doodle", "edges"}
        assert 0.71 < drawn.count("doodle") / len(drawn) < 0.79
    # The artist sketch joins only where a record has one.
    with_artist = SketchPhotoDataset([cufs, other], style_mix=data.parse_style_mix("artist=1,pencil=1"))
    assert {with_artist.style_for(cufs, rng) for _ in range(200)} == {"artist", "pencil"}
    assert {with_artist.style_for(other, rng) for _ in range(200)} == {"pencil"}
    item = dataset[1]  # drawn through the real pair maker
    assert item["sketch"].shape[-2:] == item["photo"].shape[-2:]


@pytest.mark.parametrize("text, message", [("doodle=0.5,crayon=0.5", "unknown style 'crayon'"),
                                           ("doodle=lots", "is not a number"),
                                           ("doodle=-1,edges=1", "must be a finite number, at least 0"),
                                           ("doodle=inf", "must be a finite number"),
                                           ("artist=1", "at least one drawn style"),
                                           ("", "at least one drawn style")])
def test_a_bad_style_mix_says_what_is_wrong(text, message):
    with pytest.raises(ValueError, match=message):
        data.parse_style_mix(text)


class CountingDetector:
    """Stands in for dlib's LandmarkDetector: the synthetic layout, shifted by the image's mean so
    that different photos get different points, and a count of the calls."""
    calls = 0

    def __init__(self, *args, **kwargs):
        pass

    def __call__(self, image):
        type(self).calls += 1
        return landmarks_for(image) + float(image.mean()) / 100


class NoDlib:
    def __init__(self, *args, **kwargs):
        raise ImportError("No module named 'dlib'")


def test_landmarks_file_is_written_once_and_trains_the_same_records_without_dlib(tiny_data_root, monkeypatch):
    path = tiny_data_root / "landmarks.json"
    monkeypatch.setattr(data, "LandmarkDetector", CountingDetector)
    CountingDetector.calls = 0
    found = data.build_training_records(tiny_data_root, landmarks_file=path)
    assert CountingDetector.calls == len(found) == 3 and path.is_file()

    monkeypatch.setattr(data, "LandmarkDetector", NoDlib)  # a machine without dlib: the file alone
    read = data.build_training_records(tiny_data_root, landmarks_file=path)
    assert [record.name for record in read] == [record.name for record in found]
    for first, second in zip(found, read):
        assert np.array_equal(first.landmarks, second.landmarks) and np.array_equal(first.photo, second.photo)
    # Without the file, nor dlib, the records come without landmarks, as before
    assert all(record.landmarks is None for record in data.build_training_records(tiny_data_root))


def test_landmarks_file_refuses_what_it_cannot_answer(tiny_data_root, monkeypatch):
    monkeypatch.setattr(data, "LandmarkDetector", NoDlib)
    with pytest.raises(SystemExit, match="does not exist, and dlib cannot find the landmarks"):
        data.build_training_records(tiny_data_root, landmarks_file=tiny_data_root / "missing.json")
    saved = data.TrainingLandmarks({"cufs/train/a-001": landmarks_for(None).tolist(), "no face": None})
    saved.save(tiny_data_root / "partial.json")
    partial = data.TrainingLandmarks.read(tiny_data_root / "partial.json")
    assert np.array_equal(partial("cufs/train/a-001", None), landmarks_for(None)) and partial("no face", None) is None
    with pytest.raises(ValueError, match="faces/other.jpg has no landmarks in the landmarks file"):
        partial("faces/other.jpg", np.zeros((4, 4, 3), np.uint8))


def test_loader_workers_draw_different_samples():
    """Each worker counts its own calls, so the worker's id keeps two workers' draws apart."""
    photo = synthetic_face()
    record = FaceRecord("synthetic", photo, sketch=cv2.cvtColor(photo, cv2.COLOR_RGB2GRAY) / 255.0,
                        landmarks=landmarks_for(photo))
    dataset = SketchPhotoDataset([record], seed=3)
    # The same item four times over two workers: each worker reads it at its call 1 and 2.
    loader = torch.utils.data.DataLoader(dataset, batch_size=1, sampler=[0, 0, 0, 0], num_workers=2)
    sketches = [batch["sketch"] for batch in loader]
    assert len(sketches) == 4
    assert all(not torch.equal(sketches[i], sketches[j]) for i in range(4) for j in range(i + 1, 4))


def test_a_bent_pair_moves_sketch_photo_and_points_together():
    """warp_pair bends the face's shape, and the sketch, the photo and the landmarks stay one pair:
    each of the five points still sits on its own colour in the photo and on ink in the sketch."""
    photo = synthetic_face()
    landmarks = landmarks_for(photo)
    points = data.five_points(landmarks)
    painted = _painted_points(photo, points)
    sketch = np.ones(photo.shape[:2], np.float32)
    for x, y in np.round(points).astype(int):
        cv2.circle(sketch, (int(x), int(y)), 4, 0.0, -1)
    record = FaceRecord("bent", painted, sketch=sketch, landmarks=landmarks)
    moved = []
    for seed in range(6):
        bent = data.warp_pair(record, np.random.default_rng(seed), amplitude_px=8.0)
        assert bent.photo.shape == painted.shape and bent.sketch.shape == sketch.shape
        bent_points = data.five_points(bent.landmarks)
        for index, (x, y) in enumerate(np.round(bent_points).astype(int)):
            assert np.abs(bent.photo[y, x].astype(int) - FIVE_COLOURS[index]).max() < 60, (seed, index)
            assert bent.sketch[y, x] < 0.3, (seed, index)
        moved.append(np.abs(bent_points - points).max())
        assert np.abs(_pairwise_distances(bent_points) - _pairwise_distances(points)).max() < 2 * 8.0  # each moved <= ~8 px
    assert max(moved) > 2.0  # the shape really changes


def _pairwise_distances(points: np.ndarray) -> np.ndarray:
    return np.linalg.norm(points[:, None] - points[None], axis=2)


def test_only_artist_pairs_are_bent():
    """pair_warp_px changes an artist pair and leaves every synthetic style's sample as it was."""
    photo = synthetic_face()
    record = FaceRecord("face", photo, sketch=cv2.cvtColor(photo, cv2.COLOR_RGB2GRAY).astype(np.float32) / 255.0,
                        landmarks=landmarks_for(photo))
    for style, bent in (("artist", True), ("pencil", False), ("doodle", False)):
        plain = data.make_training_pair(record, style, np.random.default_rng(3), augment=True)
        warped = data.make_training_pair(record, style, np.random.default_rng(3), augment=True, pair_warp_px=8.0)
        same = np.array_equal(plain.photo, warped.photo) and np.array_equal(plain.sketch, warped.sketch)
        assert same != bent, style
    with pytest.raises(ValueError, match="pair_warp_px"):
        SketchPhotoDataset([record], pair_warp_px=-1.0)


@pytest.mark.parametrize("augment", [False, True])
def test_cubic_photo_resampling_keeps_the_targets_fine_detail(augment):
    """--photo-resample cubic: the photo moves exactly as with linear (same framing, same sketch),
    and keeps more of its pixel-fine texture (linear's sub-pixel shifts blur the target)."""
    rng = np.random.default_rng(0)
    photo = rng.integers(0, 256, (320, 256, 3), dtype=np.uint8)  # pixel noise: all fine detail
    sketch = np.ones((320, 256), np.float32)
    cv2.ellipse(sketch, (121, 147), (70, 95), 0, 0, 360, 0.0, 2)  # framed with a sub-pixel shift
    record = FaceRecord("noise", photo, sketch=sketch)
    linear = data.make_training_pair(record, "artist", np.random.default_rng(5), augment=augment)
    cubic = data.make_training_pair(record, "artist", np.random.default_rng(5), augment=augment, photo_resample="cubic")
    assert np.array_equal(linear.sketch, cubic.sketch)
    inner = (slice(60, 260), slice(50, 206))
    assert cubic.photo[inner].std() > 1.1 * linear.photo[inner].std()
    smooth = lambda image: cv2.GaussianBlur(image.astype(np.float32), (0, 0), 3.0)[inner]  # the same picture, coarsely
    assert np.abs(smooth(cubic.photo) - smooth(linear.photo)).mean() < 2.0
    with pytest.raises(ValueError, match="photo_resample"):
        SketchPhotoDataset([record], photo_resample="nearest")
