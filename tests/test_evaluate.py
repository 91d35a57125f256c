import json
import math
from pathlib import Path

import cv2
import numpy as np
import pytest

from sketch2face.training.evaluate import (INNER_FACE_BOX, grid, identification, identity_by_group, image_metrics, inner_face, main,
                                          mean_over_draws, paired_identity, photo_likeness, sign_test_p, train_doodle_draws,
                                          train_doodles)
from sketch2face.training.export import group_limits
from sketch2face.networks import UNetGenerator

from .cli import run_cli
from .test_data import tiny_data_root  # noqa: F401  (fixture)
from .test_styles import synthetic_face

REPO_ROOT = Path(__file__).resolve().parent.parent


def test_identification_ranks():
    real = np.eye(4)
    generated = real + 0.1  # each closest to its own photo
    assert identification(generated, real)["rank1"] == 1.0
    swapped = real[[1, 0, 2, 3]]  # the first two are each other's nearest
    result = identification(swapped, real)
    assert result["rank1"] == 0.5 and result["rank5"] == 1.0
    assert result["ranks"] == [1, 1, 0, 0]  # each of the first two has the other one nearer
    assert result["mean_distance"] == pytest.approx(np.sqrt(2) / 2)


def test_identity_by_group_splits_ranks_against_the_whole_gallery():
    real = np.eye(4)
    swapped = real[[1, 0, 2, 3]]  # faces 0 and 1 are each other's nearest
    ranks = identification(swapped, real)["ranks"]
    by_group = identity_by_group(["f-1", "m-2", "f-3", "m-4"], ranks)
    assert by_group == {"women": {"faces": 2, "rank1": 0.5, "rank5": 1.0}, "men": {"faces": 2, "rank1": 0.5, "rank5": 1.0}}
    assert identity_by_group(["x-1"], [0]) == {}  # names without a group prefix give no breakdown


def test_model_card_states_the_measured_group_gap():
    fake = {"ranks": [0, 3, 0, 0], "by_group": identity_by_group(["f-1", "f-2", "m-3", "m-4"], [0, 3, 0, 0])}
    raw = {"ranks": [2, 0, 1, 1], "by_group": identity_by_group(["f-1", "f-2", "m-3", "m-4"], [2, 0, 1, 1])}
    line = group_limits({"cufs_test": {"identity": fake, "raw_sketch_identity": raw}})
    assert "\n".join(line) == ("- Measured on CUFS test, rank-1 identity differs by group:\n"
                              "  50% of the 2 women (their raw sketches: 50%);\n"
                              "  100% of the 2 men (their raw sketches: 0%).")
    assert group_limits(None) == [] and group_limits({"cufs_test": {"identity": {"rank1": 0.5}}}) == []


@pytest.mark.filterwarnings("ignore:divide by zero")  # PSNR of identical images is infinite
def test_image_metrics_follow_their_definitions():
    real = synthetic_face(250, 200)
    assert image_metrics(real, real)["ssim"] == pytest.approx(1.0)
    shifted = np.clip(real.astype(int) + 10, 0, 255).astype(np.uint8)
    metrics = image_metrics(real, shifted)
    difference = real.astype(float) - shifted.astype(float)
    assert metrics["mse"] == pytest.approx(np.mean(difference**2))
    assert metrics["psnr"] == pytest.approx(10 * np.log10(255**2 / metrics["mse"]))
    assert metrics["l2"] == pytest.approx(np.sqrt(np.sum(difference**2)))


def test_photo_likeness_separates_line_art_from_a_face():
    line_art = np.full((100, 100, 3), 255, np.uint8)
    cv2.circle(line_art, (50, 50), 30, (0, 0, 0), 2)
    face = synthetic_face(100, 100)
    assert photo_likeness(face)["mean_saturation"] > photo_likeness(line_art)["mean_saturation"]
    assert photo_likeness(face)["midtone_fraction"] > 0.5 > photo_likeness(line_art)["midtone_fraction"]


def test_grid_letterboxes_mixed_images():
    canvas = grid([[np.zeros((50, 20), np.float32), np.zeros((10, 80, 3), np.uint8)]], cell=(40, 40), gap=2)
    assert canvas.shape == (44, 86, 3)


def complete_tiny_root(root):
    """Add the evaluation folders to the tiny training layout."""
    photo = cv2.resize(synthetic_face(), (200, 250))
    for index, name in enumerate(("f-0", "m-1", "m-2")):  # CUHK's file names start with the person's sex
        cv2.imwrite(str(root / "cufs/test/photos" / f"{name}.jpg"), np.roll(photo, index * 5, axis=1))
        cv2.imwrite(str(root / "cufs/test/sketches" / f"{name}.jpg"), cv2.Canny(photo, 50, 100) ^ 255)
    for folder in ("doodles", "edgemaps"):
        (root / "eval" / folder).mkdir(parents=True)
        cv2.imwrite(str(root / "eval" / folder / "1.jpg"), cv2.Canny(photo, 50, 100))
    return root


def test_evaluate_cli_writes_json_markdown_and_grids(tmp_path, tiny_data_root, capsys):  # noqa: F811
    model_dir = tmp_path / "model"
    UNetGenerator(ngf=4, num_downs=6).save_pretrained(model_dir)
    root = complete_tiny_root(tiny_data_root)
    out = tmp_path / "eval"
    command = ["--model", str(model_dir), "--out", str(out), "--data-root", str(root)]
    finished = run_cli(main, command, capsys)
    assert finished.returncode == 0, finished.stderr[-2000:]
    report = json.loads((out / "metrics.json").read_text())
    assert report["cufs_test"]["pairs"] == 3
    assert 0.0 <= report["cufs_test"]["ssim"] <= 1.0
    assert set(report["canada"]) == {"pencil", "xdog", "edges", "doodle"}
    identity = report["cufs_test"]["identity"]
    assert {group: result["faces"] for group, result in identity["by_group"].items()} == {"women": 1, "men": 2}
    assert identity["by_group"]["men"]["rank1"] == np.mean([rank == 0 for rank in identity["ranks"][1:]])
    table = (out / "metrics.md").read_text()
    assert "| **sketch2face (ours)** |" in table and "| women | 1 |" in table and "| men | 2 |" in table
    # The project's examples are measured too (for the canvas-edge rectangle), but never judged by KID.
    examples = report["unpaired"]["examples"]
    assert examples["count"] == len(list((REPO_ROOT / "examples").glob("*.png"))) == 8
    assert examples["seam_step"] is not None and examples["seam_step"] >= 0.0
    assert "| examples | 8 |" in table and "canvas-edge step" in table
    for name in ("grid_cufs_test.png", "grid_canada.png", "grid_doodles.png", "grid_edgemaps.png"):
        assert cv2.imread(str(out / name)) is not None


def test_select_compares_candidates_on_cufs_train_without_reading_test(tmp_path, tiny_data_root, capsys):  # noqa: F811
    for name, ngf in (("a", 4), ("b", 8)):
        UNetGenerator(ngf=ngf, num_downs=6).save_pretrained(tmp_path / name)
    # No cufs/test folder at all: selection must not need it.
    assert not any((tiny_data_root / "cufs" / "test" / "photos").iterdir())
    out = tmp_path / "select"
    command = ["--select", str(tmp_path / "a"), str(tmp_path / "b"), "--out", str(out), "--data-root", str(tiny_data_root)]
    finished = run_cli(main, command, capsys)
    assert finished.returncode == 0, finished.stderr[-2000:]
    results = json.loads((out / "selection.json").read_text())
    assert list(results) == [str(tmp_path / "a"), str(tmp_path / "b")]
    for result in results.values():
        assert result["gallery"] == 2 and 0.0 <= result["rank1"] <= 1.0 and 0.0 <= result["ssim"] <= 1.0
        # None here: two images are too few for KID
        assert {"kid_x1000", "doodle_kid_x1000", "doodle_kid_inner_face_x1000", "doodle_checkerboard_peaks"} <= set(result)
        assert result["checkerboard_peaks"] > 0 and result["doodle_checkerboard_peaks"] > 0
        assert result["doodle_seam_step"] is None or result["doodle_seam_step"] >= 0.0
    assert ("| doodle KID x1000 | doodle KID x1000, inner face | checkerboard | doodle checkerboard "
            "| doodle canvas-edge step |") in finished.stdout
    assert "kept out of a validation run" not in finished.stdout
    assert not (out / "metrics.json").exists()


def select_one_model(tmp_path, root, capsys, *options):
    """``evaluate --select`` of one small random generator; the finished run and its selection.json entry."""
    UNetGenerator(ngf=4, num_downs=6).save_pretrained(tmp_path / "a")
    out = tmp_path / "select"
    finished = run_cli(main, ["--select", str(tmp_path / "a"), *options, "--out", str(out), "--data-root", str(root)], capsys)
    assert finished.returncode == 0, finished.stderr[-2000:]
    return finished, json.loads((out / "selection.json").read_text())[str(tmp_path / "a")]


def test_select_judges_doodles_as_the_mean_over_several_draws(tmp_path, tiny_data_root, capsys):  # noqa: F811
    finished, result = select_one_model(tmp_path, tiny_data_root, capsys, "--doodle-draws", "3")
    per_draw = result["doodle_draws"]
    assert len(per_draw) == 3
    grids = [figures["doodle_checkerboard_peaks"] for figures in per_draw]
    assert len(set(grids)) == 3  # three different draws, not one draw three times
    assert result["doodle_checkerboard_peaks"] == pytest.approx(np.mean(grids))
    assert "means over 3 draws of the doodles" in finished.stdout
    refused = run_cli(main, ["--select", str(tmp_path / "a"), "--doodle-draws", "0", "--data-root", str(tiny_data_root)], capsys)
    assert refused.returncode == 2 and "--doodle-draws must be at least 1" in refused.stderr


def test_doodle_draws_start_from_the_single_draw_every_earlier_rule_used(tiny_data_root):  # noqa: F811
    draws = train_doodle_draws(tiny_data_root, 2)
    assert all(np.array_equal(a, b) for a, b in zip(draws[0], train_doodles(tiny_data_root, 0)))
    assert all(np.array_equal(a, b) for a, b in zip(draws[1], train_doodles(tiny_data_root, 1)))
    assert not all(np.array_equal(a, b) for a, b in zip(draws[0], draws[1]))


def test_mean_over_draws_is_none_where_a_draw_had_too_few_images():
    per_draw = [{"doodle_kid_x1000": 500.0, "doodle_kid_inner_face_x1000": None, "doodle_checkerboard_peaks": 1.0,
                 "doodle_seam_step": 2.0},
                {"doodle_kid_x1000": 600.0, "doodle_kid_inner_face_x1000": 700.0, "doodle_checkerboard_peaks": 2.0,
                 "doodle_seam_step": 1.0}]
    assert mean_over_draws(per_draw) == {"doodle_kid_x1000": 550.0, "doodle_kid_inner_face_x1000": None,
                                         "doodle_checkerboard_peaks": 1.5, "doodle_seam_step": 1.5}


def test_inner_face_crops_the_same_face_box_at_any_canvas_scale():
    canvas = np.zeros((320, 256, 3), np.uint8)
    x0, y0, x1, y1 = INNER_FACE_BOX
    canvas[y0:y1, x0:x1] = 200
    crop = inner_face(canvas)
    assert crop.shape == (y1 - y0, x1 - x0, 3) and (crop == 200).all()
    doubled = cv2.resize(canvas, (512, 640), interpolation=cv2.INTER_NEAREST)
    assert np.array_equal(inner_face(doubled), cv2.resize(crop, (2 * (x1 - x0), 2 * (y1 - y0)), interpolation=cv2.INTER_NEAREST))
    with pytest.raises(ValueError, match="not a canvas-framed image"):
        inner_face(np.zeros((300, 200, 3), np.uint8))


def test_select_reports_the_pairs_a_validation_run_kept_out(tmp_path, tiny_data_root, capsys):  # noqa: F811
    finished, result = select_one_model(tmp_path, tiny_data_root, capsys, "--validation-every", "2")
    # The tiny root has two train pairs; with every 2nd kept out, the second is the validation face,
    # still named among both photos.
    assert len(result["distances"]) == 2 and result["mean_distance"] == pytest.approx(np.mean(result["distances"]), abs=1e-5)
    assert result["validation"] == {"faces": 1, "rank1": float(result["ranks"][1] == 0), "rank5": 1.0,
                                    "mean_distance": pytest.approx(result["distances"][1])}
    assert "| Candidate (CUFS train pairs kept out of a validation run) |" in finished.stdout


def test_side_by_side_shows_the_same_inputs_through_each_model(tmp_path, tiny_data_root, capsys):  # noqa: F811
    for name, ngf in (("a", 4), ("b", 8)):
        UNetGenerator(ngf=ngf, num_downs=6).save_pretrained(tmp_path / name)
    root = complete_tiny_root(tiny_data_root)
    out, examples_only = tmp_path / "eval", tmp_path / "docs" / "side_by_side.png"
    command = ["--side-by-side", str(tmp_path / "a"), str(tmp_path / "b"), "--out", str(out), "--data-root", str(root),
               "--examples-grid", str(examples_only)]
    finished = run_cli(main, command, capsys)
    assert finished.returncode == 0, finished.stderr[-2000:]
    examples = len(list(Path("examples").glob("*.png")))
    cell_h, gap = 160, 4
    # Two inputs per row, each as input | model a | model b | photo (blank without one).
    full = cv2.imread(str(out / "grid_side_by_side.png"))
    rows = -(-(examples + 2 + 3) // 2)  # + a doodle and an edge map, + the three CUFS test pairs
    assert full.shape[:2] == (rows * (cell_h + gap) + gap, 8 * (128 + gap) + gap)
    assert cv2.imread(str(examples_only)).shape[0] == -(-examples // 2) * (cell_h + gap) + gap
    assert not (out / "metrics.json").exists()


def test_checkerboard_peaks_find_a_faint_period_2_4_8_pattern_and_not_plain_texture():
    from sketch2face.training.evaluate import checkerboard_peaks

    rng = np.random.default_rng(0)
    y, x = np.mgrid[0:320, 0:256]
    smooth = rng.normal(128, 20, (320, 256))  # a flat spectrum: no frequency stands out
    pattern = sum(np.cos(np.pi * x * 2 / period) * np.cos(np.pi * y * 2 / period) for period in (2, 4, 8)) * 2.0
    as_rgb = lambda grey: np.repeat(np.clip(grey, 0, 255).astype(np.uint8)[..., None], 3, axis=2)  # noqa: E731
    clean, checkered = checkerboard_peaks(as_rgb(smooth)), checkerboard_peaks(as_rgb(smooth + pattern))
    assert clean < 1.5 and checkered > 3 * clean


def tiny_generator_and_bilinear_upscaler(folder: Path) -> tuple[Path, Path]:
    """Saved folders: a tiny untrained generator, and an upscaler without a correction (a bilinear resize)."""
    import torch

    from sketch2face.networks import FaceUpscaler

    generator, upscaler = folder / "generator", folder / "upscaler"
    torch.manual_seed(0)
    UNetGenerator(ngf=4, num_downs=6).save_pretrained(generator)
    plain = FaceUpscaler(channels=4, blocks=1)
    with torch.no_grad():
        plain.to_subpixels.weight.zero_()
    plain.save_pretrained(upscaler)
    return generator, upscaler


def evaluate_upscaler_report(command: list[str], capsys, report_path: Path):
    """Run evaluate_upscaler's CLI; it must succeed; returns its output and the report it wrote."""
    from sketch2face.training import evaluate_upscaler

    finished = run_cli(evaluate_upscaler.main, command, capsys)
    assert finished.returncode == 0, finished.stderr[-2000:]
    return finished, json.loads(report_path.read_text())


def test_evaluate_upscaler_compares_it_with_resizing_on_held_out_photos_and_generated_faces(tmp_path, tiny_data_root, capsys):  # noqa: F811
    import csv

    from sketch2face.training import evaluate_upscaler

    root = complete_tiny_root(tiny_data_root)
    (root / "faces" / "3dsk").mkdir()
    face = cv2.imread(str(root / "faces" / "canada" / "003f.jpg"))
    cv2.imwrite(str(root / "faces" / "canada" / "004m.jpg"), np.roll(face, 6, axis=1))
    cv2.imwrite(str(root / "faces" / "3dsk" / "f_001.jpg"), face)
    with open(root / "faces" / "eyes.csv", "a", newline="") as handle:
        csv.writer(handle).writerows([["canada/004m.jpg", 206.0, 326.0, 318.0, 326.0], ["3dsk/f_001.jpg", 200.0, 326.0, 312.0, 326.0]])
    generator, upscaler = tiny_generator_and_bilinear_upscaler(tmp_path)
    out = tmp_path / "eval"
    command = ["--upscaler", str(upscaler), "--generator", str(generator), "--out", str(out), "--data-root", str(root)]
    finished, report = evaluate_upscaler_report(command, capsys, out / "upscaler_metrics.json")
    assert report["canada_photos"] == 2
    for kind in ("clean", "soft"):
        rows = report["photos"][kind]
        assert set(rows) == {"bilinear", "bicubic", "lanczos", "upscaler"}
        assert abs(rows["upscaler"]["psnr_face"] - rows["bilinear"]["psnr_face"]) < 0.5  # it is bilinear, measured alike
        assert rows["bicubic"]["psnr_face"] > 20 and 0 < rows["bicubic"]["ssim_face"] <= 1
    assert report["photos"]["soft"]["bicubic"]["detail_vs_real"] < report["photos"]["clean"]["bicubic"]["detail_vs_real"]
    assert set(report["generated"]) == {"cufs_test", "canada_doodles"}
    assert "| clean | upscaler |" in finished.stdout
    assert cv2.imread(str(out / "grid_upscaler_crops.png")) is not None

    crops = tmp_path / "docs" / "crops.png"
    command = ["--upscaler", str(upscaler), "--generator", str(generator), "--examples-grid", str(crops), "--only-grid",
               "--out", str(tmp_path / "grid-only")]
    assert run_cli(evaluate_upscaler.main, command, capsys).returncode == 0
    examples = len(list(Path("examples").glob("*.png")))
    assert cv2.imread(str(crops)).shape[:2] == (-(-examples // 2) * (224 + 4) + 4, 4 * (224 + 4) + 4)  # bicubic | upscaler, 2 a row
    assert not (tmp_path / "grid-only").exists()


def test_evaluate_upscaler_select_compares_candidates_with_bicubic_on_held_out_people_only(tmp_path, tiny_data_root, capsys):  # noqa: F811
    generator, bilinear = tiny_generator_and_bilinear_upscaler(tmp_path)
    out = tmp_path / "select"
    command = ["--select", str(bilinear), "--generator", str(generator), "--out", str(out), "--data-root", str(tiny_data_root)]
    finished, report = evaluate_upscaler_report(command, capsys, out / "upscaler_select.json")
    # tiny_data_root's one London person is the first (so a held-out) person; 3 sketches of the photo.
    assert report["validation"]["people"] == 1 and report["validation"]["faces"] == 3
    rows = report["rows"]
    assert set(rows) == {"bicubic", str(bilinear)}
    assert rows[str(bilinear)]["detail_vs_real"] < rows["bicubic"]["detail_vs_real"]  # bilinear is the softer resize
    assert rows["bicubic"]["colour_shift"] == 0.0 and 0.0 < rows[str(bilinear)]["colour_shift"] < 3.0  # resizing keeps colours
    assert f"| {bilinear} |" in finished.stdout and "| bicubic |" in finished.stdout
    assert (out / "generated_validation_pairs.npz").exists() and not list(out.glob("generated_training*"))  # only the held-out side


def test_sign_test_p_is_the_exact_two_sided_binomial_tail():
    assert sign_test_p(0, 0) == 1.0
    assert sign_test_p(5, 5) == 1.0
    assert sign_test_p(4, 7) == pytest.approx(2 * sum(math.comb(11, k) for k in range(5)) / 2 ** 11)  # 0.549
    assert sign_test_p(10, 0) == sign_test_p(0, 10) == pytest.approx(2 / 2 ** 10)


def test_paired_identity_counts_the_faces_each_model_alone_names_right():
    reference = {"gallery": 6, "ranks": [0, 0, 0, 2, 5, 1], "distances": [0.3, 0.3, 0.3, 0.5, 0.6, 0.4]}
    candidate = {"gallery": 6, "ranks": [0, 1, 0, 0, 3, 1], "distances": [0.2, 0.4, 0.3, 0.4, 0.5, 0.4]}
    paired = paired_identity(reference, candidate)
    assert (paired["first_under_both"], paired["first_only_under_reference"], paired["first_only_under_candidate"]) == (2, 1, 1)
    assert paired["rank1_p"] == 1.0
    assert paired["mean_rank"] == pytest.approx([8 / 6, 5 / 6])
    assert (paired["rank_better"], paired["rank_worse"]) == (2, 1)
    assert (paired["distance_closer"], paired["distance_further"]) == (3, 1)
    without_distances = {key: value for key, value in reference.items() if key != "distances"}
    assert "distance_p" not in paired_identity(without_distances, candidate)
    with pytest.raises(ValueError, match="not the same faces"):
        paired_identity(reference, {**candidate, "gallery": 7})


def test_compare_cli_reads_two_reports_face_by_face_and_refuses_bad_files(tmp_path, capsys):
    def report(cufs_ranks, pencil_ranks):
        return {"cufs_test": {"identity": {"gallery": len(cufs_ranks), "ranks": cufs_ranks}},
                "canada": {"pencil": {"gallery": len(pencil_ranks), "ranks": pencil_ranks}}}
    reference, candidate = tmp_path / "reference.json", tmp_path / "candidate.json"
    reference.write_text(json.dumps(report([0, 1, 2, 0], [0, 0])))
    candidate.write_text(json.dumps(report([0, 0, 0, 3], [0, 1])))
    main(["--compare", str(reference), str(candidate)])
    table = capsys.readouterr().out
    assert "| CUFS test (4) | 1 | 1 | 2 | 1 | 0.75 -> 0.75 | 2 / 1 (1) | not in both reports |" in table
    assert "| Canada pencil (2) | 1 | 1 | 0 |" in table

    broken = tmp_path / "broken.json"
    broken.write_text("{not json")
    for bad, message in [(tmp_path / "missing.json", "can't read"), (broken, "can't read")]:
        with pytest.raises(SystemExit):
            main(["--compare", str(reference), str(bad)])
        assert message in capsys.readouterr().err
    other_faces = tmp_path / "other.json"
    other_faces.write_text(json.dumps(report([0, 1, 2], [0, 0])))
    with pytest.raises(SystemExit):
        main(["--compare", str(reference), str(other_faces)])
    assert "not the same faces" in capsys.readouterr().err
    no_ranks = tmp_path / "no_ranks.json"
    no_ranks.write_text(json.dumps([1, 2]))
    with pytest.raises(SystemExit):
        main(["--compare", str(reference), str(no_ranks)])
    assert "JSON object" in capsys.readouterr().err


def _line_face_sketch(page=(600, 600), box=(200, 150, 400, 450)):
    from sketch2face import preprocess

    image = np.full(page[::-1], 255, np.uint8)
    x0, y0, x1, y1 = box
    cv2.ellipse(image, ((x0 + x1) // 2, (y0 + y1) // 2), ((x1 - x0) // 2, (y1 - y0) // 2), 0, 0, 360, 0, 3)
    return preprocess.normalise(image)


def test_seam_step_sees_a_lighter_canvas_and_not_the_face():
    from sketch2face import preprocess
    from sketch2face.preprocess import drawing_region
    from sketch2face.training.evaluate import seam_step

    sketch = _line_face_sketch()  # a small face on a big page: the result reaches far past the canvas
    size = preprocess.output_size(sketch)
    to_output = preprocess.canvas_to_output(sketch, 1.0, size)
    region = drawing_region(sketch.canvas) > 0
    for inside, expected in ((200, 0.0), (212, 12.0)):
        canvas = np.full((preprocess.CANVAS_SIZE[1], preprocess.CANVAS_SIZE[0], 3), inside, np.uint8)
        canvas[region] = (190, 140, 120)  # the face: never counted
        output = cv2.warpAffine(canvas, to_output, size, borderMode=cv2.BORDER_CONSTANT, borderValue=(200, 200, 200))
        assert seam_step(output, sketch) == pytest.approx(expected, abs=0.5)
    whole = preprocess.NormalisedSketch(canvas=np.ones((320, 256), np.float32), to_canvas=np.array([[1.0, 0, 0], [0, 1.0, 0]]),
                                        input_size=(256, 320), inverted=False, thinned=False)
    assert seam_step(np.full((320, 256, 3), 200, np.uint8), whole) is None  # the result is the canvas: no edge
