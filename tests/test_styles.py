import numpy as np
import pytest

from sketch2face.training import styles


def synthetic_face(height=320, width=256):
    """A face-like photo drawn here: skin ellipse, dark hair, eyes, mouth, on blue."""
    import cv2

    photo = np.full((height, width, 3), (90, 150, 220), np.uint8)
    cv2.ellipse(photo, (128, 150), (95, 125), 0, 0, 360, (60, 40, 30), -1)  # hair
    cv2.ellipse(photo, (128, 175), (70, 95), 0, 0, 360, (225, 185, 160), -1)  # skin
    for x in (100, 156):
        cv2.circle(photo, (x, 163), 8, (40, 30, 30), -1)
    cv2.ellipse(photo, (128, 230), (22, 7), 0, 0, 360, (170, 80, 80), -1)
    return photo


def landmarks_for(photo):
    """A plausible 68-point layout on the synthetic face (chin at y=270)."""
    points = np.zeros((68, 2), np.float32)
    angles = np.linspace(np.pi, 0, 17)
    points[0:17] = np.stack([128 + 70 * np.cos(angles), 175 + 95 * np.sin(angles)], 1)
    points[17:27] = np.stack([np.linspace(80, 176, 10), np.full(10, 140)], 1)
    points[27:36] = np.stack([np.full(9, 128), np.linspace(165, 210, 9)], 1)
    for start, cx in ((36, 100), (42, 156)):
        theta = np.linspace(0, 2 * np.pi, 6, endpoint=False)
        points[start : start + 6] = np.stack([cx + 12 * np.cos(theta), 163 + 5 * np.sin(theta)], 1)
    theta = np.linspace(0, 2 * np.pi, 20, endpoint=False)
    points[48:68] = np.stack([128 + 22 * np.cos(theta), 230 + 7 * np.sin(theta)], 1)
    return points


@pytest.mark.parametrize("style", sorted(styles.PHOTO_STYLES))
def test_every_style_is_a_white_paper_drawing(style):
    photo = synthetic_face()
    sketch = styles.make_sketch(style, photo, np.random.default_rng(0), landmarks_for(photo))
    assert sketch.shape == photo.shape[:2] and sketch.dtype == np.float32
    assert 0.0 <= sketch.min() and sketch.max() <= 1.0
    assert np.median(sketch) > 0.8, "paper must stay white"
    ink = (sketch < 0.5).mean()
    assert 0.002 < ink < 0.5, f"{style}: implausible amount of ink {ink:.3f}"


def test_doodle_pen_width_and_broken_strokes_vary_with_the_seed():
    photo = synthetic_face()
    marks = landmarks_for(photo)
    inks = [(styles.doodle(photo, np.random.default_rng(seed), marks) < 0.5).sum() for seed in range(8)]
    assert max(inks) > 1.5 * min(inks)


def test_doodle_draws_the_landmark_features():
    photo = synthetic_face()
    marks = landmarks_for(photo)
    with_marks = [(styles.doodle(photo, np.random.default_rng(s), marks) < 0.5)[150:250, 80:180].sum() for s in range(5)]
    without = [(styles.doodle(photo, np.random.default_rng(s), None) < 0.5)[150:250, 80:180].sum() for s in range(5)]
    assert np.mean(with_marks) > np.mean(without)


def test_pencil_keeps_shading_while_edges_are_binary():
    photo = synthetic_face()
    rng = np.random.default_rng(1)
    pencil = styles.pencil(photo, rng)
    edges = styles.edges(photo, rng)
    assert len(np.unique(edges)) == 2
    assert ((pencil > 0.05) & (pencil < 0.95)).mean() > 0.01


def test_unknown_style_is_rejected():
    with pytest.raises(ValueError, match="unknown sketch style"):
        styles.make_sketch("crayon", synthetic_face(), np.random.default_rng(0))
