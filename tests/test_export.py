"""Exporting checkpoints, and exporting several of one lineage as their weight average."""

import dataclasses
import json

import torch

from sketch2face.training.export import STAGES_FILE, export, main
from sketch2face.networks import UNetGenerator
from sketch2face.training.train import TrainConfig, train
from sketch2face.training.upsampling import balanced_phase_kernel

from .cli import run_cli
from .test_data import tiny_data_root  # noqa: F401  (fixture)


def quick_run(out_dir, data_root, seed=0, init_from=None, **overrides):
    # No frozen loss networks: this tests the lineage bookkeeping, not the losses.
    config = dataclasses.replace(TrainConfig.quick(), with_landmarks=False, seed=seed, lambda_perceptual=0.0,
                                 lambda_identity=0.0, **overrides)
    train(config, out_dir, data_root, device="cpu", init_from=init_from)
    return out_dir / "checkpoint.pt"


def generator_state(checkpoint):
    return torch.load(checkpoint, map_location="cpu", weights_only=True)["generator"]


def test_checkpoints_of_one_lineage_export_as_their_weight_average_and_others_are_refused(tmp_path, tiny_data_root, capsys):  # noqa: F811
    base = quick_run(tmp_path / "base", tiny_data_root)
    tune = quick_run(tmp_path / "tune", tiny_data_root, seed=1, init_from=base)
    folder = export([base, tune], tmp_path / "soup")

    averaged = UNetGenerator.from_pretrained(folder).state_dict()
    base_state, tune_state = generator_state(base), generator_state(tune)
    for name, value in averaged.items():
        if value.is_floating_point():
            torch.testing.assert_close(value, (base_state[name] + tune_state[name]) / 2, msg=name)
        else:  # batch-norm counters are not averaged
            assert torch.equal(value, base_state[name]), name
    assert any(not torch.equal(base_state[name], tune_state[name]) for name in base_state)  # a real average

    stages = json.loads((folder / STAGES_FILE).read_text())
    assert [stage.get("run") for stage in stages[:2]] == [(tmp_path / "base").as_posix(), (tmp_path / "tune").as_posix()]
    assert stages[2] == {"average_of": [(tmp_path / "base").as_posix(), (tmp_path / "tune").as_posix()],
                         "sources": [[(tmp_path / "base").as_posix()], [(tmp_path / "tune").as_posix()]],
                         "export_arguments": [base.as_posix(), tune.as_posix()]}
    card = (folder / "README.md").read_text()
    assert "Stage 2, fine-tuned from the stage before" in card
    assert "the final generators of stage 1 and stage 2 were averaged weight by weight" in card
    assert f"python -m sketch2face.training.export --checkpoint {base} {tune}" in card

    # A second branch from stage 1 says which stage it started from; the average is described once.
    branch = quick_run(tmp_path / "branch", tiny_data_root, seed=2, init_from=base)
    card = (export([tune, branch], tmp_path / "branches") / "README.md").read_text()
    assert "Stage 3, fine-tuned from stage 1" in card and card.count("averaged weight by weight") == 1
    assert "the final generators of stage 2 and stage 3 were averaged" in card

    # Networks trained from different starts would average to noise: refused, in one line.
    other = quick_run(tmp_path / "other", tiny_data_root, seed=3)
    result = run_cli(main, ["--checkpoint", str(tune), str(other), "--out", str(tmp_path / "refused")], capsys)
    assert result.returncode == 2
    assert "cannot average generators that were not fine-tuned from one common run" in result.stderr
    assert "Traceback" not in result.stderr and not (tmp_path / "refused").exists()


def test_a_fine_tune_averages_with_the_exported_folder_it_started_from(tmp_path, tiny_data_root, capsys):  # noqa: F811
    exported = export(quick_run(tmp_path / "base", tiny_data_root), tmp_path / "weights")
    tune = quick_run(tmp_path / "tune", tiny_data_root, seed=1, init_from=exported)
    out = tmp_path / "soup"
    result = run_cli(main, ["--checkpoint", str(tune), str(exported), "--out", str(out)], capsys)
    assert result.returncode == 0, result.stderr[-2000:]

    averaged = UNetGenerator.from_pretrained(out).state_dict()
    base_state, tune_state = UNetGenerator.from_pretrained(exported).state_dict(), generator_state(tune)
    for name, value in averaged.items():
        if value.is_floating_point():
            torch.testing.assert_close(value, (base_state[name] + tune_state[name]) / 2, msg=name)
    assert any(not torch.equal(base_state[name], tune_state[name]) for name in base_state)

    stages = json.loads((out / STAGES_FILE).read_text())
    runs = [(tmp_path / "base").as_posix(), (tmp_path / "tune").as_posix()]
    assert [stage.get("run") for stage in stages[:2]] == runs
    assert stages[2] == {"average_of": runs[::-1], "sources": [[runs[1]], [runs[0]]],
                         "export_arguments": [tune.as_posix(), exported.as_posix()]}
    card = (out / "README.md").read_text()
    assert "the final generators of stage 2 and stage 1 were averaged weight by weight" in card
    assert f"python -m sketch2face.training.export --checkpoint {tune} {exported}`" in card

    # Exporting a folder alone would only copy it: refused, in one line.
    result = run_cli(main, ["--checkpoint", str(exported), "--out", str(tmp_path / "copy")], capsys)
    assert result.returncode == 2 and "is already exported" in result.stderr and "Traceback" not in result.stderr

    # A second seed from the same folder, its own average, then the average of the two averages:
    # the card names each stage's real parent and what each averaged folder held.
    second = quick_run(tmp_path / "second", tiny_data_root, seed=2, init_from=exported)
    second_soup = tmp_path / "second_soup"
    assert run_cli(main, ["--checkpoint", str(second), str(exported), "--out", str(second_soup)], capsys).returncode == 0
    both = tmp_path / "both"
    result = run_cli(main, ["--checkpoint", str(out), str(second_soup), "--out", str(both)], capsys)
    assert result.returncode == 0, result.stderr[-2000:]
    card = (both / "README.md").read_text()
    assert "Stage 3, fine-tuned from stage 1's exported generator" in card
    assert ("Then the average of stage 2 and stage 1 and the average of stage 3 and stage 1 were averaged"
            in " ".join(card.split()))
    averaged = UNetGenerator.from_pretrained(both).state_dict()
    second_state = generator_state(second)
    for name, value in averaged.items():
        if value.is_floating_point():
            torch.testing.assert_close(value, base_state[name] / 2 + (tune_state[name] + second_state[name]) / 4, msg=name)


def test_the_average_with_a_balanced_fine_tune_is_balanced_again(tmp_path, tiny_data_root, capsys):  # noqa: F811
    transposed = dict(upsample="transposed", output_scale=1, num_scales=1)
    exported = export(quick_run(tmp_path / "base", tiny_data_root, **transposed), tmp_path / "weights")
    tune = quick_run(tmp_path / "tune", tiny_data_root, seed=1, init_from=exported, balance_output_phases=True, **transposed)
    out = tmp_path / "soup"
    result = run_cli(main, ["--checkpoint", str(tune), str(exported), "--out", str(out)], capsys)
    assert result.returncode == 0, result.stderr[-2000:]

    averaged = UNetGenerator.from_pretrained(out).state_dict()
    base_state, tune_state = UNetGenerator.from_pretrained(exported).state_dict(), generator_state(tune)
    mean = {name: (base_state[name] + tune_state[name]) / 2 for name, value in averaged.items() if value.is_floating_point()}
    painting = "to_image.0.weight"
    assert not torch.allclose(balanced_phase_kernel(base_state[painting]), base_state[painting])  # the base is not balanced
    torch.testing.assert_close(averaged[painting], balanced_phase_kernel(mean.pop(painting)))
    for name, value in mean.items():
        torch.testing.assert_close(averaged[name], value, msg=name)


def test_a_missing_checkpoint_is_refused_in_one_line(tmp_path, capsys):
    result = run_cli(main, ["--checkpoint", str(tmp_path / "gone.pt"), "--out", str(tmp_path / "out")], capsys)
    assert result.returncode == 2 and f"no checkpoint file or exported generator at {tmp_path / 'gone.pt'}" in result.stderr
    assert "Traceback" not in result.stderr and not (tmp_path / "out").exists()


def test_a_v2_fine_tune_of_a_transposed_stage_gets_a_card_that_names_its_loss_networks(tmp_path):
    """The card of a v2 run started from a stage 4 style folder: its history, the refit, the machine,
    the frozen loss networks with their licences, and KID when the metrics have it."""
    parent = tmp_path / "shipped"
    UNetGenerator(ngf=4, upsample="transposed").save_pretrained(parent)
    old_config = {"ngf": 4, "ndf": 4, "num_downs": 6, "batch_size": 8, "lr": 2e-4, "lambda_l1": 100.0}  # pre-v2 keys only
    (parent / STAGES_FILE).write_text(json.dumps([{"run": "runs/main", "steps": 10, "epochs": 1, "config": old_config,
                                                   "init_from": None, "seconds": 600, "device": "cpu"}]))
    run = tmp_path / "runs" / "v2"
    run.mkdir(parents=True)
    config = TrainConfig(ngf=4, ndf=4, output_scale=1, lr=1e-4)
    torch.save({"generator": UNetGenerator(ngf=4, upsample="resize").state_dict(), "step": 7, "epoch": 0,
                "config": dataclasses.asdict(config)}, run / "checkpoint.pt")
    (run / "train_config.json").write_text(json.dumps({**dataclasses.asdict(config), "init_from": str(parent), "max_minutes": 120}))
    (run / "summary.json").write_text(json.dumps({"seconds": 7200, "device": "cpu", "machine": "Some CPU, 2 cores"}))
    metrics = tmp_path / "metrics.json"
    kid_row = {"kid_x1000": 123.4}
    cufs = {"ssim": 0.7, "psnr": 17.0, "mse": 1000.0, "identity": {"rank1": 0.6, "rank5": 0.8, "mean_distance": 0.4},
            "raw_sketch_identity": {"rank1": 0.27}}
    metrics.write_text(json.dumps({"cufs_test": cufs, "kid": {
        name: kid_row for name in ("cufs_test", "reference_cufs_photos", "eval_sketches", "canada_doodles", "reference_canada_photos")}}))

    card = (export(run / "checkpoint.pt", tmp_path / "out", metrics) / "README.md").read_text()
    assert "Stage 1, from scratch: 10 steps of batch 8, 10 min on cpu" in card
    assert ("Stage 2, fine-tuned from the stage before's exported generator, with a fresh discriminator and its "
            "transposed kernels refitted for resize upsampling") in card
    assert "7 steps of batch 8, 120 min on Some CPU, 2 cores" in card
    assert f"--init-from {parent}" in card and "--output-scale 1" in card and "--lr 0.0001" in card
    assert "darknet-tiny, an ImageNet classifier (MIT licence)" in card and "SFace (OpenCV model zoo, Apache-2.0)" in card
    assert "London *smiling* photos" in card
    assert "CUFS test outputs vs CUFS\ntrain photos 123" in card
    assert json.loads((tmp_path / "out" / STAGES_FILE).read_text())[-1]["machine"] == "Some CPU, 2 cores"


def test_an_exported_folders_card_is_rendered_again_from_the_folder_alone(tmp_path, capsys):
    folder = tmp_path / "weights"
    UNetGenerator(ngf=4).save_pretrained(folder)
    stage = {"run": "runs/main", "steps": 10, "epochs": 1, "config": {"ngf": 4, "ndf": 4, "num_downs": 6, "batch_size": 8},
             "init_from": None, "seconds": 600, "device": "cpu"}
    (folder / STAGES_FILE).write_text(json.dumps([stage]))
    metrics = tmp_path / "metrics.json"
    cufs = {"ssim": 0.66, "psnr": 16.7, "mse": 1660.0, "identity": {"rank1": 0.48, "rank5": 0.73, "mean_distance": 0.4},
            "raw_sketch_identity": {"rank1": 0.3}}
    metrics.write_text(json.dumps({"cufs_test": cufs}))
    (folder / "upscaler").mkdir()

    assert run_cli(main, ["--refresh-card", str(folder), "--metrics", str(metrics)], capsys).returncode == 0
    card = (folder / "README.md").read_text()
    assert "| 0.660 | 16.70 | 1660.0 | 48% | 73% |" in card
    assert "Stage 1, from scratch: 10 steps of batch 8" in card and "artist sketch 40% of the time" in card
    assert "`upscaler/`: a separate x2 super-resolution network" in card and "512x640 after the upscaler" in card
    assert "shifted copies" not in card  # these metrics do not say they were shift-averaged

    metrics.write_text(json.dumps({"cufs_test": cufs, "shift_average": True}))
    assert run_cli(main, ["--refresh-card", str(folder), "--metrics", str(metrics)], capsys).returncode == 0
    assert "Measured as `Sketch2Face` serves it: the generator's mean over shifted copies" in (folder / "README.md").read_text()
    assert "shaded_sketches/" not in (folder / "README.md").read_text()

    (folder / "shaded_sketches").mkdir()
    assert run_cli(main, ["--refresh-card", str(folder), "--metrics", str(metrics)], capsys).returncode == 0
    assert "`shaded_sketches/`: a second generator of the same shape" in (folder / "README.md").read_text()

    # A stage that drew only some styles says so, and its command reproduces the mix.
    (folder / STAGES_FILE).write_text(json.dumps([{**stage, "config": {**stage["config"], "style_mix": "doodle=0.7,edges=0.3"}}]))
    assert run_cli(main, ["--refresh-card", str(folder)], capsys).returncode == 0
    card = (folder / "README.md").read_text()
    assert "every photo drawn only as doodle=0.7,edges=0.3; CUFS pairs appear 1x per epoch" in card
    assert "--style-mix doodle=0.7,edges=0.3" in card and "artist sketch 40%" not in card

    (folder / STAGES_FILE).unlink()
    result = run_cli(main, ["--refresh-card", str(folder)], capsys)
    assert result.returncode == 2 and "has no training_stages.json" in result.stderr and "Traceback" not in result.stderr
