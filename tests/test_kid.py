"""KID: the unbiased estimator on synthetic feature sets, and the MobileNetV2 judge itself."""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest

from sketch2face.training import kid
from sketch2face.training.evaluate import KID_ROWS, kid_table
from sketch2face.training.shared_models import default_models_root

from .test_data import tiny_data_root  # noqa: F401  (fixture)
from .test_styles import synthetic_face


def direct_kid(real: np.ndarray, fake: np.ndarray) -> float:
    """The unbiased MMD^2 written out pair by pair, k(x, y) = (x.y / d + 1)^3."""
    d = real.shape[1]

    def k(x, y):
        return (float(np.dot(x, y)) / d + 1.0) ** 3

    m, n = len(real), len(fake)
    within_real = sum(k(real[i], real[j]) for i in range(m) for j in range(m) if i != j) / (m * (m - 1))
    within_fake = sum(k(fake[i], fake[j]) for i in range(n) for j in range(n) if i != j) / (n * (n - 1))
    across = sum(k(real[i], fake[j]) for i in range(m) for j in range(n)) / (m * n)
    return within_real + within_fake - 2.0 * across


def test_kid_matches_the_direct_formula():
    rng = np.random.default_rng(0)
    real, fake = rng.normal(size=(6, 5)), rng.normal(0.3, 1.2, size=(9, 5))
    assert kid.kernel_inception_distance(real, fake) == pytest.approx(direct_kid(real, fake), rel=1e-12)
    assert kid.kid_x1000(real, fake) == pytest.approx(1000 * direct_kid(real, fake), rel=1e-12)


def test_kid_is_unbiased_near_zero_for_one_distribution_and_grows_with_a_shift():
    rng = np.random.default_rng(1)
    same, shifted = [], []
    for _ in range(300):
        real = rng.normal(size=(8, 16))
        same.append(kid.kernel_inception_distance(real, rng.normal(size=(8, 16))))
        shifted.append(kid.kernel_inception_distance(real, rng.normal(0.5, 1.0, size=(8, 16))))
    same, shifted = np.array(same), np.array(shifted)
    standard_error = same.std() / np.sqrt(len(same))
    assert abs(same.mean()) < 3 * standard_error  # unbiased: zero on average, even for 8 samples
    assert (same < 0).any()  # an unbiased estimate must be able to go below zero
    assert shifted.mean() > 20 * standard_error and np.mean(shifted > same) > 0.9
    larger = [kid.kernel_inception_distance(rng.normal(size=(64, 16)), rng.normal(shift, 1.0, size=(64, 16)))
              for shift in (0.25, 0.5, 1.0)]
    assert larger[0] < larger[1] < larger[2]


def test_kid_refuses_unusable_feature_sets():
    with pytest.raises(ValueError, match="at least 2"):
        kid.kernel_inception_distance(np.zeros((1, 4)), np.zeros((5, 4)))
    with pytest.raises(ValueError, match="one width"):
        kid.kernel_inception_distance(np.zeros((3, 4)), np.zeros((3, 5)))


def test_judge_input_squeezes_the_whole_image_to_224():
    image = np.zeros((250, 200, 3), np.uint8)
    image[:25] = 255  # the top tenth: kept, not cropped away
    image[100:150, 80:120] = (10, 200, 30)
    prepared = kid.judge_input(image)
    assert prepared.shape == (224, 224, 3) and prepared.dtype == np.uint8
    assert prepared[:20].min() == 255 and prepared[25:].max(axis=2)[:, :80].max() == 0
    assert tuple(prepared[112, 112]) == (10, 200, 30)
    large = np.zeros((640, 512, 3), np.uint8)
    large[:, 256:] = 200
    shrunk = kid.judge_input(large)
    assert shrunk.shape == (224, 224, 3) and shrunk[:, :112].max() == 0 and shrunk[:, 112:].min() == 200
    with pytest.raises(ValueError, match="RGB uint8"):
        kid.judge_input(np.zeros((64, 64), np.uint8))


def test_detail_falls_with_blur_and_is_what_the_judge_sees():
    import cv2

    photo = synthetic_face()
    noisy = np.clip(photo + np.random.default_rng(0).normal(0, 12, photo.shape), 0, 255).astype(np.uint8)
    blurred = cv2.GaussianBlur(noisy, (0, 0), 1.5)
    assert kid.detail([noisy]) > 2 * kid.detail([blurred])
    assert kid.detail([noisy, blurred]) == pytest.approx((kid.detail([noisy]) + kid.detail([blurred])) / 2)
    # Measured on the judge's 224x224 view: enlarging an image changes it only by the resampling.
    big = cv2.resize(blurred, (blurred.shape[1] * 2, blurred.shape[0] * 2), interpolation=cv2.INTER_CUBIC)
    assert kid.detail([big]) == pytest.approx(kid.detail([blurred]), rel=0.15)
    with pytest.raises(ValueError, match="no images"):
        kid.detail([])


def test_kid_table_reports_values_skips_and_missing_rows():
    result = {name: {"comparison": text, "generated": 5, "real": 7, "kid_x1000": 12.34, "detail_ratio": 0.456}
              for name, text in KID_ROWS.items()}
    result["eval_sketches"]["kid_x1000"] = None
    del result["canada_doodles"]["detail_ratio"]  # a metrics.json written before the column existed
    lines = kid_table(result)
    assert "| CUFS test outputs vs CUFS train photos | 5 | 7 | 12 | 0.46 |" in lines
    assert any(line.startswith("| eval doodles + edge maps") and line.endswith("| n/a | 0.46 |") for line in lines)
    assert any(line.startswith("| synthetic Canada doodle") and line.endswith("| 12 | n/a |") for line in lines)
    assert kid_table({"skipped": "no judge"}) == ["", "KID x1000 was not measured: no judge"]
    assert kid_table(None) == []


@pytest.mark.skipif(not (default_models_root() / kid.JUDGE_FILE).is_file(),
                    reason="the MobileNetV2 judge is not present (../shared/models)")
@pytest.mark.skipif(importlib.util.find_spec("ai_edge_litert") is None,
                    reason="ai-edge-litert is not installed (pip install -r requirements-dev.txt)")
def test_mobilenet_judge_tells_faces_from_noise():
    judge = kid.MobileNetJudge()
    rng = np.random.default_rng(2)

    def faces(count):
        out = []
        for _ in range(count):
            face = np.roll(synthetic_face(), rng.integers(-12, 12, size=2), axis=(0, 1)).astype(np.int16)
            out.append(np.clip(face + rng.integers(-25, 25, size=3), 0, 255).astype(np.uint8))
        return out

    noise = [rng.integers(0, 256, (320, 256, 3), dtype=np.uint8) for _ in range(8)]
    first, second, noisy = judge.features(faces(8)), judge.features(faces(8)), judge.features(noise)
    assert first.shape == (8, kid.FEATURE_SIZE) and np.isfinite(first).all() and (first >= 0).all()
    again = judge.features([noise[0]])
    assert np.array_equal(again[0], noisy[0])  # deterministic
    assert kid.kid_x1000(first, second) < 0.2 * kid.kid_x1000(first, noisy)
    with pytest.raises(ValueError, match="no images"):
        judge.features([])


@pytest.mark.skipif(not (default_models_root() / kid.JUDGE_FILE).is_file(),
                    reason="the MobileNetV2 judge is not present (../shared/models)")
@pytest.mark.skipif(importlib.util.find_spec("ai_edge_litert") is None,
                    reason="ai-edge-litert is not installed (pip install -r requirements-dev.txt)")
def test_evaluate_reports_kid_for_every_comparison(tmp_path, tiny_data_root):  # noqa: F811
    import csv
    import json

    import cv2

    from sketch2face.networks import UNetGenerator
    from sketch2face.training import evaluate

    from .test_evaluate import complete_tiny_root

    root = complete_tiny_root(tiny_data_root)
    # Enough photos on each side for an unbiased estimate (>= 2): two more London/3DSK, one more Canada.
    big = cv2.resize(synthetic_face(), (512, 640))
    (root / "faces" / "3dsk").mkdir()
    rows = [["london_neutral/002_03.jpg"], ["3dsk/f_001.jpg"], ["canada/004m.jpg"]]
    for index, (name,) in enumerate(rows):
        cv2.imwrite(str(root / "faces" / name), np.roll(big, 9 * (index + 1), axis=1))
    with open(root / "faces" / "eyes.csv", "a", newline="") as handle:
        csv.writer(handle).writerows([[name, 200.0, 326.0, 312.0, 326.0] for (name,) in rows])
    model_dir = tmp_path / "model"
    UNetGenerator(ngf=4, num_downs=6).save_pretrained(model_dir)
    report = evaluate.run(str(model_dir), tmp_path / "eval", root)
    result = report["kid"]
    counts = {name: (result[name]["generated"], result[name]["real"]) for name in KID_ROWS}
    assert counts == {"cufs_test": (3, 2), "eval_sketches": (2, 3), "canada_doodles": (2, 3), "doodles_all": (4, 3),
                      "reference_cufs_photos": (3, 2), "reference_canada_photos": (2, 3)}
    assert all(isinstance(result[name]["kid_x1000"], float) for name in KID_ROWS)
    # An untrained generator's grey mush is further from the photos than the photos themselves.
    assert result["cufs_test"]["kid_x1000"] > result["reference_cufs_photos"]["kid_x1000"]
    assert json.loads((tmp_path / "eval" / "metrics.json").read_text())["kid"] == result
    assert "| CUFS test outputs vs CUFS train photos | 3 | 2 |" in (tmp_path / "eval" / "metrics.md").read_text()
    # The photos carry more pixel-scale detail than an untrained generator's mush; against
    # themselves the ratio is 1 only up to the two photo sets differing.
    assert 0.0 < result["cufs_test"]["detail_ratio"] < result["reference_cufs_photos"]["detail_ratio"]
