import cv2
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


# -- the mouse-doodle parts --------------------------------------------------------------------


def _part_ink(draw, style, seed=0):
    photo = synthetic_face()
    face = styles.FaceGeometry(landmarks_for(photo))
    ink = np.zeros(photo.shape[:2], np.uint8)
    pen = styles.Pen(width=2, unevenness=0.2, wobble=0.5, jitter=0.2)
    draw(ink, photo, face, pen, np.random.default_rng(seed), style) if draw is styles.draw_hair \
        else draw(ink, face, pen, np.random.default_rng(seed), style)
    return ink > 127


def test_hair_region_is_the_hair_of_the_photo():
    photo = synthetic_face()
    region = styles.hair_region(photo, styles.FaceGeometry(landmarks_for(photo)))
    assert region[40, 128] and region[150, 45]  # the crown, the side of the head
    assert not region[175, 128] and not region[10, 10] and not region[300, 128]  # the face, the background, below


@pytest.mark.parametrize("style", sorted(styles.HAIR_STYLES))
def test_each_hair_style_draws_in_the_hair(style):
    photo = synthetic_face()
    region = styles.hair_region(photo, styles.FaceGeometry(landmarks_for(photo)))
    ink = _part_ink(styles.draw_hair, style)
    assert ink.sum() > 150, "too little hair drawn"
    near_hair = cv2.dilate(region.astype(np.uint8), np.ones((25, 25), np.uint8)) > 0
    assert ink[near_hair].sum() > 0.9 * ink.sum()
    assert not ink[150:200, 100:156].any(), "hair over the eyes and nose"


def test_hair_styles_look_different():
    drawings = {style: _part_ink(styles.draw_hair, style) for style in styles.HAIR_STYLES}
    for first in drawings:
        for second in drawings:
            if first < second:
                overlap = (drawings[first] & drawings[second]).sum() / (drawings[first] | drawings[second]).sum()
                assert overlap < 0.5, (first, second, overlap)


@pytest.mark.parametrize("draw,styles_of,box", [
    (styles.draw_eyes, styles.EYE_STYLES, (150, 176, 80, 176)),
    (styles.draw_nose, styles.NOSE_STYLES, (160, 215, 105, 151)),
    (styles.draw_mouth, styles.MOUTH_STYLES, (215, 245, 95, 161)),
], ids=["eyes", "nose", "mouth"])
def test_each_feature_style_draws_at_its_landmarks(draw, styles_of, box):
    top, bottom, left, right = box
    inks = {}
    for style in styles_of:
        ink = _part_ink(draw, style)
        assert ink.sum() > 8, style
        assert ink[top:bottom, left:right].sum() >= 0.95 * ink.sum(), style
        inks[style] = ink
    assert len({ink.tobytes() for ink in inks.values()}) == len(inks)  # every style is its own shape


def test_dots_eyes_are_small_blobs_and_almonds_are_outlines():
    dots, almonds = _part_ink(styles.draw_eyes, "dots"), _part_ink(styles.draw_eyes, "almonds")
    count, _, stats, _ = cv2.connectedComponentsWithStats(dots.astype(np.uint8))
    assert count - 1 == 2 and stats[1:, cv2.CC_STAT_WIDTH].max() <= 10
    assert almonds.sum() > 2 * dots.sum()
    with pytest.raises(ValueError, match="unknown part style"):
        _part_ink(styles.draw_eyes, "stars")


def test_wobbly_uneven_pen_wanders_and_changes_width():
    def horizontal_stroke(pen):
        ink = np.zeros((100, 300), np.uint8)
        pen.stroke(ink, np.array([[20.0, 50.0], [280.0, 50.0]]), np.random.default_rng(3))
        columns = ink[:, 40:260] > 127
        rows = np.arange(100)[:, None]
        centres = (columns * rows).sum(0) / np.maximum(columns.sum(0), 1)
        return centres, columns.sum(0)

    steady_centres, steady_widths = horizontal_stroke(styles.Pen(width=3, unevenness=0.0, wobble=0.0, jitter=0.0))
    shaky_centres, shaky_widths = horizontal_stroke(styles.Pen(width=3, unevenness=0.5, wobble=2.5, jitter=0.3))
    assert np.ptp(steady_centres) < 0.5 and np.ptp(steady_widths) <= 1
    assert np.ptp(shaky_centres) > 2.0 and np.ptp(shaky_widths) >= 2


def test_deformation_moves_the_drawing_but_keeps_it_in_the_canvas():
    """A drawing in the middle moves by up to the amplitude; one that reaches the edges keeps
    every stroke, because the warp shrinks to the margin it has."""
    for seed in range(8):
        middle = np.zeros((320, 256), np.uint8)
        cv2.ellipse(middle, (128, 160), (70, 95), 0, 0, 360, 255, 3)
        moved = styles.deform_relative_to_photo(middle, np.random.default_rng(seed), amplitude=10.0)
        shifted = ((moved > 127) & (cv2.dilate(middle, np.ones((5, 5), np.uint8)) < 128)).sum()
        assert shifted > 0.1 * (middle > 127).sum(), seed  # a real deformation, not a 1-pixel jitter
        distance = cv2.distanceTransform((middle < 128).astype(np.uint8), cv2.DIST_L2, 5)
        assert distance[moved > 127].max() <= 10.0 + 2.0, seed  # never further than the amplitude

        edge = np.zeros((320, 256), np.uint8)
        cv2.rectangle(edge, (3, 3), (252, 316), 255, 2)  # 3 pixels from every side
        kept = styles.deform_relative_to_photo(edge, np.random.default_rng(seed), amplitude=10.0)
        for band in (np.s_[:12, :], np.s_[-12:, :], np.s_[:, :12], np.s_[:, -12:]):  # each side of the frame
            assert kept[band].sum() > 0.9 * edge[band].sum(), (seed, band)
        assert not (kept[0].any() or kept[-1].any() or kept[:, 0].any() or kept[:, -1].any()), seed


def test_doodles_vary_their_part_shapes_with_the_seed():
    photo = synthetic_face()
    marks = landmarks_for(photo)
    drawings = [styles.doodle(photo, np.random.default_rng(seed), marks) < 0.5 for seed in range(6)]
    assert len({drawing.tobytes() for drawing in drawings}) == 6
    hair = [drawing[:120].sum() for drawing in drawings]
    assert max(hair) > 2 * max(min(hair), 1)  # some with much hair, some with little or none
