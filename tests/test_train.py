import argparse
import dataclasses
import json
from pathlib import Path
import sys

import numpy as np
import pytest
import torch
from accelerate import Accelerator

from sketch2face.networks import UNetGenerator
from sketch2face.training import objectives
from sketch2face.training.config import PRE_V2_DEFAULTS, TrainConfig
from sketch2face.training.train import (
    Pix2PixTrainer,
    _elapsed_in_earlier_runs,
    budgeted_progress,
    config_flag_types,
    face_l1,
    layout_l1,
    main,
    parse_args,
    pixel_l1,
)

from .cli import run_cli

from .small_networks import SmallFaceEmbedder, SmallFeatureNetwork
from .test_data import tiny_data_root  # noqa: F401  (fixture)
from .test_styles import synthetic_face

TERMS = {"G_GAN", "G_L1", "G_feat", "G_perceptual", "G_identity", "G_L1_face", "G_teacher", "G_shift", "G_L1_layout",
         "D_real", "D_fake"}
PIX2PIX = dict(PRE_V2_DEFAULTS)  # the stage 1-7 objective and networks, without the frozen loss networks
NO_LOSS_NETWORKS = ["--lambda-perceptual", "0", "--lambda-identity", "0"]  # the CLI runs below need no ported weights


def face_batch(output_scale=1):
    """(sketch, photo): a drawn face, the photo at output_scale x the sketch's size."""
    size = 64 * output_scale
    photo = torch.from_numpy(synthetic_face(size, size).astype(np.float32) / 127.5 - 1).permute(2, 0, 1)
    sketch = torch.nn.functional.avg_pool2d(photo.mean(0, keepdim=True)[None], output_scale)[0]
    return sketch[None].repeat(2, 1, 1, 1), photo[None].repeat(2, 1, 1, 1)


def test_real_training_steps_lower_the_l1_loss():
    torch.manual_seed(0)
    config = TrainConfig(ngf=8, ndf=8, num_downs=5, batch_size=2, lr=2e-3, **PIX2PIX)
    trainer = Pix2PixTrainer(config, Accelerator(cpu=True))
    sketch, photo = face_batch()
    losses = [trainer.train_step(sketch, photo) for _ in range(25)]
    assert set(losses[0]) == TERMS
    assert all(entry["G_L1_face"] == 0.0 for entry in losses)  # off by default: plain pix2pix
    assert all(entry[name] == 0.0 for entry in losses for name in ("G_feat", "G_perceptual", "G_identity"))
    first = np.mean([entry["G_L1"] for entry in losses[:3]])
    last = np.mean([entry["G_L1"] for entry in losses[-3:]])
    assert last < 0.7 * first, (first, last)
    assert trainer.step == 25


def test_face_l1_is_the_mean_error_over_the_masked_pixels_only():
    photo = torch.zeros(2, 3, 4, 4)
    fake = torch.zeros(2, 3, 4, 4)
    fake[:, :, :2] = 0.5  # error in the top half only
    fake[:, :, 2:] = 2.0
    mask = torch.zeros(2, 1, 4, 4)
    mask[:, :, :2] = 1.0
    assert face_l1(fake, photo, mask).item() == 0.5
    assert face_l1(fake, photo, torch.zeros_like(mask)).item() == 0.0
    assert face_l1(fake, photo, None).item() == 0.0


def test_pixel_terms_leave_out_the_samples_outside_the_pixel_mask():
    photo = torch.zeros(2, 3, 4, 4)
    fake = torch.zeros(2, 3, 4, 4)
    fake[0], fake[1] = 0.5, 2.0
    both, first, second, neither = (torch.tensor(mask) for mask in ([True, True], [True, False], [False, True], [False, False]))
    assert pixel_l1(fake, photo, both).item() == pytest.approx(torch.nn.functional.l1_loss(fake, photo).item())
    assert pixel_l1(fake, photo, None).item() == pytest.approx(1.25)
    # Still divided by the whole batch: the kept sample weighs what it weighs in a plain L1.
    assert pixel_l1(fake, photo, first).item() == pytest.approx(0.25)
    assert pixel_l1(fake, photo, second).item() == pytest.approx(1.0)
    assert pixel_l1(fake, photo, neither).item() == 0.0
    face = torch.ones(2, 1, 4, 4)
    assert face_l1(fake, photo, face, second).item() == pytest.approx(2.0)
    assert face_l1(fake, photo, face, neither).item() == 0.0


def test_train_step_applies_the_pixel_mask_to_both_pixel_terms():
    """Through the real step, with the same networks, batch and dropout draws: the pixel terms of
    each sample alone add up to the plain terms, and vanish when both samples are left out; the
    other terms do not move."""
    sketch, photo = face_batch()
    face = torch.ones(2, 1, 64, 64)

    def first_step(pixel_mask):
        torch.manual_seed(0)
        config = TrainConfig(ngf=8, ndf=8, num_downs=5, batch_size=2, lr=2e-3, lambda_face=50.0, **PIX2PIX)
        trainer = Pix2PixTrainer(config, Accelerator(cpu=True))
        return trainer.train_step(sketch, photo, face, None, None, pixel_mask)

    plain, none = first_step(None), first_step(torch.tensor([False, False]))
    first, second = first_step(torch.tensor([True, False])), first_step(torch.tensor([False, True]))
    assert first["G_L1"] > 0.0 and second["G_L1"] > 0.0
    assert first["G_L1"] + second["G_L1"] == pytest.approx(plain["G_L1"], rel=1e-5)
    assert none["G_L1"] == none["G_L1_face"] == 0.0
    assert plain["G_L1_face"] > 0.0 and first["G_L1_face"] > 0.0  # each sample's face L1 is its own mean
    assert first["G_GAN"] == second["G_GAN"] == none["G_GAN"] == plain["G_GAN"]


def test_discriminator_step_trains_the_discriminator_alone():
    torch.manual_seed(0)
    config = TrainConfig(ngf=8, ndf=8, num_downs=5, batch_size=2, lr=2e-3, **PIX2PIX)
    trainer = Pix2PixTrainer(config, Accelerator(cpu=True))
    sketch, photo = face_batch()
    generator = {name: value.clone() for name, value in trainer.generator.state_dict().items()}
    losses = [trainer.discriminator_step(sketch, photo) for _ in range(15)]
    assert set(losses[0]) == {"D_real", "D_fake"} and trainer.step == 0
    after = trainer.generator.state_dict()
    # Weights untouched; BatchNorm's running statistics move in train mode, as in every step.
    assert all(torch.equal(value, after[name]) for name, value in generator.items() if "running" not in name
               and "num_batches" not in name)
    assert losses[-1]["D_real"] + losses[-1]["D_fake"] < 0.7 * (losses[0]["D_real"] + losses[0]["D_fake"])


def test_train_warms_up_the_discriminator_outside_the_budget(tmp_path, tiny_data_root, capsys):  # noqa: F811
    out = tmp_path / "run"
    result = run_cli(main, ["--quick", "--out", str(out), "--data-root", str(tiny_data_root), "--with-landmarks", "false",
                            *NO_LOSS_NETWORKS, "--discriminator-warmup-steps", "3"], capsys)
    assert result.returncode == 0, result.stderr
    entries = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]
    warmup = [entry for entry in entries if entry.get("warmup")]
    assert [entry["warmup_step"] for entry in warmup] == [1, 2, 3] and entries[:3] == warmup
    assert all(set(entry) >= {"D_real", "D_fake"} for entry in warmup)
    assert json.loads((out / "summary.json").read_text())["steps"] == 2  # the G steps, as without it (one batch an epoch)
    assert _elapsed_in_earlier_runs(out / "log.jsonl") == max(entry["elapsed_s"] for entry in entries if "step" in entry)


def test_face_term_is_weighted_and_trains_the_masked_region():
    sketch, photo = face_batch()
    mask = torch.zeros(2, 1, 64, 64)
    mask[:, :, 20:44, 20:44] = 1.0

    def trainer_with(lambda_face):
        torch.manual_seed(0)
        config = TrainConfig(ngf=8, ndf=8, num_downs=5, batch_size=2, lr=2e-3, lambda_face=lambda_face, **PIX2PIX)
        return Pix2PixTrainer(config, Accelerator(cpu=True))

    single, double = trainer_with(50.0), trainer_with(100.0)
    torch.manual_seed(1)
    first_single = single.train_step(sketch, photo, mask)
    torch.manual_seed(1)
    first_double = double.train_step(sketch, photo, mask)
    assert first_single["G_L1"] == first_double["G_L1"]  # the same networks and the same first output
    assert first_single["G_L1_face"] > 0.0
    assert abs(first_double["G_L1_face"] - 2.0 * first_single["G_L1_face"]) < 1e-4 * first_double["G_L1_face"]
    losses = [first_double] + [double.train_step(sketch, photo, mask) for _ in range(24)]
    assert np.mean([e["G_L1_face"] for e in losses[-3:]]) < 0.7 * np.mean([e["G_L1_face"] for e in losses[:3]])


def test_learning_rate_is_constant_then_decays_linearly_to_zero():
    trainer = Pix2PixTrainer(TrainConfig(ngf=4, ndf=4, num_downs=5, epochs=10, decay_from_epoch=6, **PIX2PIX),
                             Accelerator(cpu=True))
    assert trainer.set_learning_rate(3.0) == 2e-4
    assert abs(trainer.set_learning_rate(8.0) - 1e-4) < 1e-12
    assert trainer.set_learning_rate(10.0) == 0.0


def test_checkpoint_round_trip_restores_weights_and_step(tmp_path):
    config = TrainConfig(ngf=8, ndf=4, num_downs=5, batch_size=2, lambda_perceptual=0.0, lambda_identity=0.0)
    first = Pix2PixTrainer(config, Accelerator(cpu=True))
    sketch, photo = face_batch(output_scale=2)  # the v2 default: full-size refiner, 2 D scales
    first.train_step(sketch, photo)
    first.save_checkpoint(tmp_path / "checkpoint.pt")
    second = Pix2PixTrainer(config, Accelerator(cpu=True))
    second.load_checkpoint(tmp_path / "checkpoint.pt")
    assert second.step == 1
    for a, b in zip(first.generator.state_dict().values(), second.generator.state_dict().values()):
        assert torch.equal(a, b)
    first.export_generator(tmp_path / "export")
    assert sorted(p.name for p in (tmp_path / "export").iterdir()) == ["README.md", "config.json", "model.safetensors"]
    loaded = UNetGenerator.from_pretrained(tmp_path / "export")
    for a, b in zip(first.generator.state_dict().values(), loaded.state_dict().values()):
        assert torch.equal(a, b)


def test_train_cli_quick_runs_saves_and_resumes(tmp_path, tiny_data_root, capsys):  # noqa: F811
    command = ["--quick", "--out", str(tmp_path / "run"),
               "--data-root", str(tiny_data_root), "--with-landmarks", "false", *NO_LOSS_NETWORKS]
    first = run_cli(main, command, capsys)
    assert first.returncode == 0, first.stderr[-2000:]
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["steps"] == 2 and summary["records"] == 3  # 2 CUFS + 1 face photo, no held-out data
    logged = [json.loads(line) for line in (tmp_path / "run" / "log.jsonl").read_text().splitlines()]
    assert all(TERMS <= set(entry) for entry in logged) and logged[-1]["G_feat"] > 0.0  # every term, each step
    exported = UNetGenerator.from_pretrained(tmp_path / "run" / "generator")
    assert exported.upsample == "resize" and exported.output_scale == 2  # the v2 defaults
    assert (tmp_path / "run" / "generator" / "model.safetensors").is_file()
    assert "train:" in first.stderr  # tqdm progress

    again = run_cli(main, command + ["--resume", "--epochs", "4"], capsys)
    assert again.returncode == 0, again.stderr[-2000:]
    assert "resumed from" in again.stdout
    assert json.loads((tmp_path / "run" / "summary.json").read_text())["steps"] == 4


def test_train_cli_takes_a_style_mix_and_refuses_a_bad_one_in_one_line(tmp_path, tiny_data_root, capsys):  # noqa: F811
    command = ["--quick", "--out", str(tmp_path / "run"), "--data-root", str(tiny_data_root), "--with-landmarks", "false",
               *NO_LOSS_NETWORKS, "--style-mix", "edges=1"]
    result = run_cli(main, command, capsys)
    assert result.returncode == 0, result.stderr[-2000:]
    assert json.loads((tmp_path / "run" / "train_config.json").read_text())["style_mix"] == "edges=1"

    bad = run_cli(main, command[:-1] + ["doodles=1"] + ["--out", str(tmp_path / "bad")], capsys)
    assert bad.returncode == 1 and "--style-mix: style mix 'doodles=1': unknown style 'doodles'" in bad.stderr
    assert "Traceback" not in bad.stderr and not (tmp_path / "bad").exists()


def test_train_cli_fine_tunes_from_another_run(tmp_path, tiny_data_root, capsys):  # noqa: F811
    base = ["--quick", "--data-root", str(tiny_data_root),
            "--with-landmarks", "false", *NO_LOSS_NETWORKS]
    first = run_cli(main, base + ["--out", str(tmp_path / "base")], capsys)
    assert first.returncode == 0, first.stderr[-2000:]
    start = torch.load(tmp_path / "base" / "checkpoint.pt", weights_only=True)["generator"]

    tune = base + ["--out", str(tmp_path / "tune"), "--init-from", str(tmp_path / "base" / "checkpoint.pt"),
                   "--lambda-face", "30", "--artist-weight", "1.0", "--cufs-repeats", "2"]
    second = run_cli(main, tune, capsys)
    assert second.returncode == 0, second.stderr[-2000:]
    assert "initialised the networks from" in second.stdout
    summary = json.loads((tmp_path / "tune" / "summary.json").read_text())
    assert summary["steps"] == 4  # step 0 again; 2 CUFS x 2 repeats + 1 photo = 5 items, batch 2 -> 2 per epoch
    saved = json.loads((tmp_path / "tune" / "train_config.json").read_text())
    assert saved["init_from"].endswith("checkpoint.pt") and saved["cufs_repeats"] == 2
    tuned = torch.load(tmp_path / "tune" / "checkpoint.pt", weights_only=True)["generator"]
    assert any(not torch.equal(start[name], tuned[name]) for name in start)  # it trained on from there

    # With no epochs to run, the saved networks are exactly the ones it started from.
    zero = run_cli(main, tune + ["--epochs", "0", "--out", str(tmp_path / "zero")], capsys)
    assert zero.returncode == 0, zero.stderr[-2000:]
    copied = torch.load(tmp_path / "zero" / "checkpoint.pt", weights_only=True)["generator"]
    assert all(torch.equal(start[name], copied[name]) for name in start)

    # The model card of the fine-tuned export lists both stages and how to rerun each.
    from sketch2face.training.export import export
    card = (export(tmp_path / "tune" / "checkpoint.pt", tmp_path / "card") / "README.md").read_text()
    assert "Stage 1, from scratch" in card and "Stage 2, fine-tuned from the stage before" in card
    assert f"--init-from {tmp_path / 'base' / 'checkpoint.pt'}" in card and "--cufs-repeats 2" in card
    assert "--lambda-face 30" in card and "extra inner-face L1, weight 30" in card and "inner face" in card.split("## Model")[0]

    wrong = run_cli(main, tune[:-4] + ["--ngf", "4", "--out", str(tmp_path / "bad")], capsys)
    assert wrong.returncode != 0 and "ngf=8" in wrong.stderr


def test_time_budget_schedule_continues_across_a_resume(tmp_path):
    # Half the budget spent: the schedule stands at half of its epochs, even if fewer were done.
    assert budgeted_progress(1.0, spent_s=600.0, budget_s=1200.0, epochs=10) == 5.0
    assert budgeted_progress(7.0, spent_s=600.0, budget_s=1200.0, epochs=10) == 7.0
    # A resume counts the earlier runs' time (the last logged elapsed_s of each run) ...
    log = tmp_path / "log.jsonl"
    log.write_text("\n".join(json.dumps(entry) for entry in [
        {"step": 10, "elapsed_s": 100.0, "run_started": 1.0},
        {"step": 20, "elapsed_s": 400.0, "run_started": 1.0},
        {"step": 30, "elapsed_s": 200.0, "run_started": 2.0},
    ]) + "\n")
    earlier = _elapsed_in_earlier_runs(log)
    assert earlier == 600.0
    # ... so 60 s after it resumes, the LR is where 660 s of one uninterrupted run would put it.
    assert budgeted_progress(0.0, earlier + 60.0, budget_s=1200.0, epochs=10) == budgeted_progress(0.0, 660.0, 1200.0, 10)


def test_channels_last_training_exports_plain_safetensors(tmp_path):
    trainer = Pix2PixTrainer(TrainConfig(ngf=4, ndf=4, num_downs=5, batch_size=2, **PIX2PIX), Accelerator(cpu=True))
    assert trainer.memory_format == torch.channels_last  # the faster layout for CPU training
    sketch, photo = face_batch()
    trainer.train_step(sketch, photo)
    trainer.export_generator(tmp_path / "export")
    loaded = UNetGenerator.from_pretrained(tmp_path / "export", strict=True)
    for name, value in trainer.generator.state_dict().items():
        assert torch.equal(value, loaded.state_dict()[name]), name


def test_train_cli_fine_tunes_from_an_exported_generator_folder(tmp_path, tiny_data_root, capsys):  # noqa: F811
    """weights/ holds no discriminator: a fine-tune from it starts D afresh and keeps the history."""
    from sketch2face.training.export import STAGES_FILE, export

    base = ["--quick", "--data-root", str(tiny_data_root),
            "--with-landmarks", "false", *NO_LOSS_NETWORKS]
    first = run_cli(main, base + ["--out", str(tmp_path / "base")], capsys)
    assert first.returncode == 0, first.stderr[-2000:]
    folder = export(tmp_path / "base" / "checkpoint.pt", tmp_path / "shipped")
    assert len(json.loads((folder / STAGES_FILE).read_text())) == 1
    shipped = UNetGenerator.from_pretrained(folder).state_dict()
    base_discriminator = torch.load(tmp_path / "base" / "checkpoint.pt", weights_only=True)["discriminator"]

    zero = run_cli(main, base + ["--out", str(tmp_path / "zero"), "--init-from", str(folder), "--epochs", "0"], capsys)
    assert zero.returncode == 0, zero.stderr[-2000:]
    state = torch.load(tmp_path / "zero" / "checkpoint.pt", weights_only=True)
    assert all(torch.equal(shipped[name], state["generator"][name]) for name in shipped)
    assert not all(torch.equal(base_discriminator[name], state["discriminator"][name]) for name in base_discriminator)

    tune = run_cli(main, base + ["--out", str(tmp_path / "tune"), "--init-from", str(folder), "--cufs-repeats", "2"], capsys)
    assert tune.returncode == 0, tune.stderr[-2000:]
    card = (export(tmp_path / "tune" / "checkpoint.pt", tmp_path / "card") / "README.md").read_text()
    assert "Stage 1, from scratch" in card
    assert "Stage 2, fine-tuned from the stage before's exported generator, with a fresh discriminator" in card
    assert f"--init-from {folder}" in card
    assert len(json.loads((tmp_path / "card" / STAGES_FILE).read_text())) == 2

    wrong = run_cli(main, base + ["--out", str(tmp_path / "bad"), "--init-from", str(folder), "--ngf", "4"], capsys)
    assert wrong.returncode != 0 and "ngf=8" in wrong.stderr


@pytest.mark.parametrize("make_source", [lambda tmp: tmp / "missing.pt", lambda tmp: tmp], ids=["missing-path", "folder-without-generator"])
def test_train_cli_rejects_an_unusable_init_source_in_one_line(tmp_path, make_source, capsys):
    """A missing path, or a folder without an exported generator, fails before any data is read."""
    source = make_source(tmp_path)
    result = run_cli(main, ["--quick", "--out", str(tmp_path / "run"),
                             "--data-root", str(tmp_path / "no-data-here"), "--init-from", str(source)], capsys)
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    assert f"--init-from {source}:" in result.stderr
    assert not (tmp_path / "run" / "checkpoint.pt").exists()


# -- the v2 objective: every named term ----------------------------------------------------------


def five_points_of_the_drawn_face(count=2, output_scale=2):
    """Eye centres, nose tip and mouth corners of synthetic_face, in the photo's pixels."""
    points = torch.tensor([[50.0, 81.5], [78.0, 81.5], [64.0, 100.0], [53.0, 115.0], [75.0, 115.0]]) * (output_scale / 2)
    return points[None].repeat(count, 1, 1)


def v2_trainer(seed=0, **overrides):
    """The default v2 objective at a tiny size, with small real networks in place of the ports."""
    torch.manual_seed(seed)
    config = TrainConfig(**{**dict(ngf=8, ndf=8, num_downs=5, batch_size=2, lr=2e-3), **overrides})
    return Pix2PixTrainer(config, Accelerator(cpu=True), SmallFeatureNetwork().features,
                          SmallFaceEmbedder().identity_embedding)


def test_real_steps_lower_every_new_generator_term():
    """The v2 defaults (full-size refiner, two LSGAN discriminator scales, feature matching,
    perceptual and identity terms), 30 real Adam steps on one batch: each new term falls."""
    trainer = v2_trainer()
    sketch, photo = face_batch(output_scale=2)
    points, identity_mask = five_points_of_the_drawn_face(), torch.tensor([True, True])
    losses = [trainer.train_step(sketch, photo, None, points, identity_mask) for _ in range(30)]
    assert set(losses[0]) == TERMS
    for name in ("G_L1", "G_feat", "G_perceptual", "G_identity"):
        first = np.mean([entry[name] for entry in losses[:3]])
        last = np.mean([entry[name] for entry in losses[-3:]])
        assert first > 0 and last < 0.7 * first, (name, first, last)
    assert all(np.isfinite(list(entry.values())).all() for entry in losses)


def test_each_term_is_scaled_by_its_weight():
    sketch, photo = face_batch(output_scale=2)
    points, identity_mask = five_points_of_the_drawn_face(), torch.tensor([True, True])
    base = v2_trainer().train_step(sketch, photo, None, points, identity_mask)
    for name, weight in (("G_feat", "lambda_feat"), ("G_perceptual", "lambda_perceptual"), ("G_identity", "lambda_identity"),
                         ("G_L1", "lambda_l1"), ("G_GAN", "lambda_gan")):
        doubled = v2_trainer(**{weight: 2 * getattr(TrainConfig(), weight)}).train_step(sketch, photo, None, points, identity_mask)
        assert doubled[name] == pytest.approx(2 * base[name], rel=1e-4), name
    off = v2_trainer(lambda_perceptual=0.0, lambda_identity=0.0, lambda_feat=0.0)
    assert off.perceptual_features is None and off.identity_embedder is None  # not even built
    zeroed = off.train_step(sketch, photo, None, points, identity_mask)
    assert zeroed["G_feat"] == zeroed["G_perceptual"] == zeroed["G_identity"] == 0.0


def test_identity_term_counts_only_the_samples_with_five_points():
    embed = SmallFaceEmbedder().identity_embedding
    _, photo = face_batch(output_scale=2)
    fake = photo.clone()
    fake[1] = -fake[1]  # the second sample looks nothing like its photo
    points = five_points_of_the_drawn_face()
    both = objectives.identity_loss(fake, photo, points, torch.tensor([True, True]), embed)
    first_only = objectives.identity_loss(fake, photo, points, torch.tensor([True, False]), embed)
    second_only = objectives.identity_loss(fake, photo, points, torch.tensor([False, True]), embed)
    assert first_only.item() == pytest.approx(0.0, abs=1e-6)  # the same photo: cosine 1
    assert second_only.item() > 0.0 and both.item() == pytest.approx(second_only.item() / 2, rel=1e-5)
    assert objectives.identity_loss(fake, photo, points, torch.tensor([False, False]), embed).item() == 0.0
    with pytest.raises(ValueError, match="five points"):
        objectives.identity_loss(fake, photo, points[:, :3], torch.tensor([True, True]), embed)


def checkerboard(height, width, period):
    """+-1 squares of period ``period`` px, the pattern a stride-2 transposed decoder paints."""
    rows, columns = torch.meshgrid(torch.arange(height), torch.arange(width), indexing="ij")
    return (((rows // (period // 2)) + (columns // (period // 2))) % 2).float() * 2 - 1


def test_gaussian_blur_removes_fine_checkerboards_and_keeps_flat_colour():
    for period, kept in ((2, 0.01), (4, 0.01), (8, 0.3)):
        board = checkerboard(64, 80, period).expand(1, 3, 64, 80)
        blurred = objectives.gaussian_blur(board, 1.5)
        assert blurred.shape == board.shape
        assert blurred[..., 8:-8, 8:-8].std() < kept * board.std(), period
    flat = torch.full((2, 3, 20, 24), 0.3)
    assert torch.allclose(objectives.gaussian_blur(flat, 1.5), flat)
    assert objectives.gaussian_blur(flat, 0.0) is flat
    with pytest.raises(ValueError, match="negative"):
        objectives.gaussian_blur(flat, -1.0)


def test_blurred_identity_term_is_blind_to_a_fine_grid_and_not_to_the_face():
    torch.manual_seed(1)
    embed = SmallFaceEmbedder().identity_embedding
    _, photo = face_batch(output_scale=2)
    photo = 0.6 * photo  # room for the grid without clipping, which would shift the mean
    points, both = five_points_of_the_drawn_face(), torch.tensor([True, True])
    gridded = photo + 0.3 * checkerboard(*photo.shape[-2:], 4)
    sharp = objectives.identity_loss(gridded, photo, points, both, embed).item()
    blurred = objectives.identity_loss(gridded, photo, points, both, embed, blur_sigma=1.5).item()
    assert sharp > 1e-4 and abs(blurred) < 0.02 * sharp
    other_image = photo.flip(-1) * 0.5  # a different image still costs identity through the blur
    assert objectives.identity_loss(other_image, photo, points, both, embed, blur_sigma=1.5).item() > 0.5 * sharp


def test_train_step_shows_the_recogniser_blurred_faces_when_asked():
    seen = []
    small = SmallFaceEmbedder().identity_embedding

    def recording_embedder(rgb, five_points):
        seen.append(rgb.detach().clone())
        return small(rgb, five_points)

    sketch, photo = face_batch(output_scale=2)
    for sigma in (0.0, 1.5):
        seen.clear()
        trainer = Pix2PixTrainer(TrainConfig(ngf=8, ndf=8, num_downs=5, batch_size=2, identity_blur_sigma=sigma),
                                 Accelerator(cpu=True), SmallFeatureNetwork().features, recording_embedder)
        trainer.train_step(sketch, photo, None, five_points_of_the_drawn_face(), torch.tensor([True, True]))
        target = seen[0]  # the true photos, embedded first
        assert torch.allclose(target, objectives.gaussian_blur(photo, sigma), atol=1e-6), sigma


def test_balanced_training_keeps_the_painting_layer_phase_balanced_through_steps_and_loads(tmp_path):
    from sketch2face.training.upsampling import balanced_phase_kernel

    def imbalance(trainer):
        weight = trainer.accelerator.unwrap_model(trainer.generator).to_image[0].weight.detach()
        return (balanced_phase_kernel(weight) - weight).abs().max().item()

    sketch, photo = face_batch()
    trainers = {}
    for balance in (False, True):
        torch.manual_seed(0)
        config = TrainConfig(**{**PIX2PIX, "ngf": 8, "ndf": 8, "num_downs": 5, "batch_size": 2, "lr": 2e-3,
                                "balance_output_phases": balance})
        trainer = trainers[balance] = Pix2PixTrainer(config, Accelerator(cpu=True))
        for _ in range(3):
            trainer.train_step(sketch, photo)
    assert imbalance(trainers[False]) > 1e-3 and imbalance(trainers[True]) < 1e-6
    # A fine-tune from an unbalanced network is balanced from its first step on.
    trainers[False].save_checkpoint(tmp_path / "unbalanced.pt")
    trainers[True].init_from(tmp_path / "unbalanced.pt")
    assert imbalance(trainers[True]) < 1e-6
    with pytest.raises(SystemExit, match="balance-output-phases.*transposed"):
        Pix2PixTrainer(TrainConfig(ngf=8, ndf=8, num_downs=5, balance_output_phases=True), Accelerator(cpu=True))


def test_identity_and_perceptual_gradients_reach_the_generated_image_only():
    features, embed = SmallFeatureNetwork().features, SmallFaceEmbedder().identity_embedding
    _, photo = face_batch(output_scale=2)
    fake = (photo.flip(-1) * 0.5).requires_grad_(True)
    photo = photo.clone().requires_grad_(True)
    loss = objectives.perceptual_loss(fake, photo, features) + objectives.identity_loss(
        fake, photo, five_points_of_the_drawn_face(), torch.tensor([True, True]), embed)
    loss.backward()
    assert fake.grad.abs().sum() > 0 and photo.grad is None


def test_perceptual_loss_is_zero_for_the_same_photo_and_normalised_per_layer():
    # Seeded: about 2% of random inits leave the second ReLU layer nearly dead, its mean near 0.
    torch.manual_seed(0)
    features = SmallFeatureNetwork().features
    _, photo = face_batch()
    assert objectives.perceptual_loss(photo, photo, features).item() == 0.0
    scaled = objectives.perceptual_loss(torch.zeros_like(photo) - 1.0, photo, features).item()
    assert 0.1 < scaled < 10.0  # about 1, whatever the network's activation scale


def test_adversarial_loss_modes():
    confident = torch.full((1, 1, 4, 4), 2.0)
    assert objectives.adversarial_loss(confident, True, "lsgan").item() == pytest.approx(1.0)
    assert objectives.adversarial_loss(confident, False, "lsgan").item() == pytest.approx(4.0)
    assert objectives.adversarial_loss(confident, True, "hinge").item() == 0.0
    assert objectives.adversarial_loss(confident, False, "hinge").item() == pytest.approx(3.0)
    assert objectives.adversarial_loss(confident, True, "hinge", for_discriminator=False).item() == pytest.approx(-2.0)
    two_scales = [confident, torch.zeros(1, 1, 2, 2)]
    assert objectives.adversarial_loss(two_scales, True, "lsgan").item() == pytest.approx((1.0 + 1.0) / 2)
    with pytest.raises(ValueError, match="gan_mode"):
        objectives.adversarial_loss(confident, True, "wasserstein")


def test_feature_matching_compares_every_layer_but_the_logits():
    real = [[torch.zeros(1, 2, 4, 4), torch.zeros(1, 1, 3, 3)]]
    fake = [[torch.ones(1, 2, 4, 4), torch.full((1, 1, 3, 3), 9.0)]]  # the logits differ most, and don't count
    assert objectives.feature_matching_loss(fake, real).item() == 1.0


def test_missing_loss_network_port_fails_in_one_line(monkeypatch):
    """Until the ports are merged (or without their files), a weight above 0 says what to do."""
    monkeypatch.setitem(sys.modules, "sketch2face.training.darknet", None)  # import fails
    with pytest.raises(SystemExit, match="darknet-tiny port .* --lambda-perceptual 0"):
        Pix2PixTrainer(TrainConfig(ngf=4, ndf=4, num_downs=5), Accelerator(cpu=True))
    monkeypatch.setitem(sys.modules, "sketch2face.training.sface", None)
    with pytest.raises(SystemExit, match="SFace port .* --lambda-identity 0"):
        Pix2PixTrainer(TrainConfig(ngf=4, ndf=4, num_downs=5, lambda_perceptual=0.0), Accelerator(cpu=True))


def test_init_from_refuses_a_generator_of_another_architecture(tmp_path):
    """A transposed (stage 1-4) generator cannot start the full-size v2: its refiner has no counterpart."""
    UNetGenerator(ngf=32, upsample="transposed").save_pretrained(tmp_path)
    trainer = Pix2PixTrainer(TrainConfig(lambda_perceptual=0.0, lambda_identity=0.0), Accelerator(cpu=True))
    with pytest.raises(SystemExit, match="upsample=transposed, this config has resize"):
        trainer.init_from(tmp_path)


@pytest.mark.parametrize("flag,value,message", [("--upsample", "pixelshuffle", "upsample must be one of"),
                                                ("--gan-mode", "wasserstein", "choose one of vanilla, lsgan, hinge"),
                                                ("--num-scales", "0", "num_scales must be at least 1")])
def test_train_cli_rejects_a_bad_architecture_option_in_one_line(tmp_path, flag, value, message, capsys):
    result = run_cli(main, ["--quick", "--out", str(tmp_path / "run"), "--data-root", str(tmp_path / "no-data-here"),
                            *NO_LOSS_NETWORKS, flag, value], capsys)
    assert result.returncode != 0 and message in result.stderr and "Traceback" not in result.stderr


def test_every_config_field_gets_a_flag_parsed_by_its_own_type():
    @dataclasses.dataclass
    class Config:
        name: str = "run"
        limit: int | None = None
        rate: float = 0.1
        flag: bool = True

    parsers = config_flag_types(Config)
    assert parsers["name"]("stage 8") == "stage 8" and parsers["limit"]("3") == 3 and parsers["rate"]("0.5") == 0.5
    assert parsers["flag"]("false") is False and parsers["flag"]("yes") is True
    with pytest.raises(argparse.ArgumentTypeError):
        parsers["flag"]("maybe")
    args = parse_args(["--record-limit", "2", "--with-landmarks", "false", "--lambda-face", "30"])
    assert (args.record_limit, args.with_landmarks, args.lambda_face) == (2, False, 30.0)
    assert set(config_flag_types()) == {field.name for field in dataclasses.fields(TrainConfig)}


def test_pix2pix_v1_switch_trains_the_shipped_architecture_and_objective(tmp_path, tiny_data_root, capsys):  # noqa: F811
    """The recorded stage 1-7 commands predate the v2 defaults; with --pix2pix-v1 they build
    stages' network again (transposed convs, 256x320, no feature/perceptual/identity terms)."""
    result = run_cli(main, ["--quick", "--pix2pix-v1", "--out", str(tmp_path / "run"), "--data-root", str(tiny_data_root),
                            "--with-landmarks", "false", "--lambda-l1", "50"], capsys)
    assert result.returncode == 0, result.stderr
    saved = json.loads((tmp_path / "run" / "train_config.json").read_text())
    assert {name: saved[name] for name in PRE_V2_DEFAULTS if name != "lambda_l1"} == {
        name: value for name, value in PRE_V2_DEFAULTS.items() if name != "lambda_l1"}
    assert saved["lambda_l1"] == 50.0  # an explicit flag still wins
    exported = json.loads((tmp_path / "run" / "generator" / "config.json").read_text())
    assert exported["upsample"] == "transposed" and exported["output_scale"] == 1


@pytest.mark.parametrize(("option", "frozen_parts", "learning_parts"), [
    ("freeze_decoder", ("decoder", "to_image"), ("encoder",)),
    ("freeze_encoder", ("encoder",), ("decoder", "to_image")),
])
def test_a_frozen_half_keeps_its_weights_and_statistics_and_the_other_learns(option, frozen_parts, learning_parts):
    trainer = v2_trainer(upsample="transposed", output_scale=1, **{option: True})
    sketch, photo = face_batch()
    points, identity_mask = five_points_of_the_drawn_face(output_scale=1), torch.tensor([True, True])
    before = {name: value.clone() for name, value in trainer.generator.state_dict().items()}
    trainer.train_mode()
    assert not any(getattr(trainer.generator, part).training for part in frozen_parts)  # as it serves
    assert all(getattr(trainer.generator, part).training for part in learning_parts)
    losses = [trainer.train_step(sketch, photo, None, points, identity_mask) for _ in range(5)]
    after = trainer.generator.state_dict()
    frozen = [name for name in before if name.startswith(tuple(f"{part}." for part in frozen_parts))]
    assert frozen and any("running_mean" in name for name in frozen)
    assert all(torch.equal(before[name], after[name]) for name in frozen)  # BatchNorm statistics too
    for part in learning_parts:
        assert any(not torch.equal(before[name], after[name]) for name in before if name.startswith(f"{part}."))
    assert np.isfinite([entry["G_L1"] for entry in losses]).all()


def test_frozen_halves_refuse_what_would_not_train():
    with pytest.raises(SystemExit, match="output_scale 1"):
        v2_trainer(freeze_decoder=True)  # the default v2 generator paints at 2x through its refiner
    with pytest.raises(SystemExit, match="nothing to train"):
        v2_trainer(upsample="transposed", output_scale=1, freeze_encoder=True, freeze_decoder=True)


def test_teacher_term_holds_doodles_to_the_starting_generator_and_skips_the_rest():
    trainer = v2_trainer(upsample="transposed", output_scale=1, freeze_decoder=True, lambda_teacher=20.0)
    sketch, photo = face_batch()
    points, identity_mask = five_points_of_the_drawn_face(output_scale=1), torch.tensor([True, True])
    assert trainer.train_step(sketch, photo, None, points, identity_mask)["G_teacher"] == 0.0  # no teacher yet
    trainer.keep_as_teacher()
    teacher = {name: value.clone() for name, value in trainer.teacher.state_dict().items()}
    for _ in range(6):  # the student moves away from the copy it started as; no doodles, no term
        assert trainer.train_step(sketch, photo, None, points, identity_mask, None, torch.tensor([False, False]))["G_teacher"] == 0.0
    assert not trainer.teacher.training and not any(p.requires_grad for p in trainer.teacher.parameters())
    assert trainer.train_step(sketch, photo, None, points, identity_mask, None, torch.tensor([False, True]))["G_teacher"] > 0
    assert all(torch.equal(teacher[name], value) for name, value in trainer.teacher.state_dict().items())

    # Held on doodles, the student's doodle face drifts less than a free one's.
    free = v2_trainer(upsample="transposed", output_scale=1, freeze_decoder=True)
    free.keep_as_teacher()
    held_trainer = v2_trainer(upsample="transposed", output_scale=1, freeze_decoder=True, lambda_teacher=200.0)
    held_trainer.keep_as_teacher()
    everything = torch.tensor([True, True])
    for _ in range(15):
        for each in (free, held_trainer):
            each.train_step(sketch, photo, None, points, identity_mask, None, everything)
    drifts = []
    for each in (free, held_trainer):
        each.generator.eval()
        with torch.no_grad():
            drifts.append((each.generator(sketch) - each.teacher(sketch)).abs().mean().item())
    assert drifts[1] < 0.5 * drifts[0], drifts


def test_train_cli_teacher_needs_a_start_and_keeps_it_across_a_resume(tmp_path, tiny_data_root, capsys):  # noqa: F811
    base = ["--quick", "--data-root", str(tiny_data_root), "--with-landmarks", "false", *NO_LOSS_NETWORKS]
    alone = run_cli(main, base + ["--out", str(tmp_path / "alone"), "--lambda-teacher", "20"], capsys)
    assert alone.returncode != 0 and "--lambda-teacher: give --init-from" in alone.stderr
    first = run_cli(main, base + ["--out", str(tmp_path / "base")], capsys)
    assert first.returncode == 0, first.stderr[-2000:]

    tune = base + ["--out", str(tmp_path / "tune"), "--init-from", str(tmp_path / "base" / "generator"),
                   "--lambda-teacher", "20"]
    second = run_cli(main, tune, capsys)
    assert second.returncode == 0, second.stderr[-2000:]
    again = run_cli(main, tune + ["--resume", "--epochs", "4"], capsys)
    assert again.returncode == 0, again.stderr[-2000:]
    assert "resumed from" in again.stdout and "initialised the networks" not in again.stdout
    logged = [json.loads(line) for line in (tmp_path / "tune" / "log.jsonl").read_text().splitlines()]
    assert len(logged) == 4 and all("G_teacher" in entry for entry in logged)
    from sketch2face.training.export import export
    card = (export(tmp_path / "tune" / "checkpoint.pt", tmp_path / "card") / "README.md").read_text()
    assert "held to its start's by an L1 (G_teacher), weight 20" in card


def test_shift_term_sees_a_lattice_pattern_and_not_a_pattern_that_moves_with_the_drawing():
    sketch, _ = face_batch()
    height, width = sketch.shape[-2:]
    checker = 0.2 * (-1.0) ** (torch.arange(height)[:, None] + torch.arange(width)[None, :]).float()

    def follows_the_drawing(image):  # equivariant: the roll carries the drawing and its pattern alike
        return image.repeat(1, 3, 1, 1) * 0.5

    def paints_a_grid(image):  # the same, plus a checker fixed to the image, as a transposed decoder paints
        return follows_the_drawing(image) + checker

    for shift in ((1, 1), (1, 3), (4, 1)):
        for network, expected in ((follows_the_drawing, 0.0), (paints_a_grid, 0.4 if sum(shift) % 2 else 0.0)):
            loss = objectives.shift_consistency_loss(network, sketch, network(sketch), shift)
            assert loss.item() == pytest.approx(expected, abs=1e-6), (network.__name__, shift)


def test_shift_term_trains_both_passes_and_real_steps_lower_it():
    trainer = v2_trainer(upsample="transposed", output_scale=1, lambda_shift=100.0, lambda_perceptual=0.0,
                         lambda_identity=0.0, lambda_feat=0.0)
    sketch, photo = face_batch()
    first = trainer.train_step(sketch, photo)
    assert set(first) == TERMS and first["G_shift"] > 0
    # Same weights, no step between: the term is computed with one dropout draw for both passes,
    # so a generator in train mode reads the same twice.
    generator = trainer.accelerator.unwrap_model(trainer.generator)
    state = trainer._rng_state()
    once = trainer._shift_l1(sketch, generator(sketch), state)
    torch.set_rng_state(state[0])
    again = trainer._shift_l1(sketch, generator(sketch), state)
    assert once.item() == pytest.approx(again.item(), rel=1e-5)
    losses = [trainer.train_step(sketch, photo)["G_shift"] for _ in range(30)]
    assert np.mean(losses[-3:]) < 0.7 * np.mean([first["G_shift"], *losses[:2]]), losses
    off = v2_trainer(upsample="transposed", output_scale=1).train_step(sketch, photo)
    assert off["G_shift"] == 0.0


def test_shift_term_uses_the_shifts_serving_averages_over():
    from sketch2face.fastpath import LINE_DRAWING_SHIFTS, SHADED_SKETCH_SHIFTS
    from sketch2face.training.train import SERVING_SHIFTS

    assert set(SERVING_SHIFTS) == (set(SHADED_SKETCH_SHIFTS) | set(LINE_DRAWING_SHIFTS)) - {(0, 0)}


def test_train_cli_logs_the_shift_term_and_the_card_names_it(tmp_path, tiny_data_root, capsys):  # noqa: F811
    command = ["--quick", "--data-root", str(tiny_data_root), "--with-landmarks", "false", *NO_LOSS_NETWORKS,
               "--out", str(tmp_path / "run"), "--lambda-shift", "50"]
    result = run_cli(main, command, capsys)
    assert result.returncode == 0, result.stderr[-2000:]
    logged = [json.loads(line) for line in (tmp_path / "run" / "log.jsonl").read_text().splitlines()]
    assert logged and all(entry["G_shift"] > 0 for entry in logged)
    from sketch2face.training.export import export
    card = (export(tmp_path / "run" / "checkpoint.pt", tmp_path / "card") / "README.md").read_text()
    assert "moved a few pixels (G_shift), weight 50" in card


def test_layout_term_compares_block_means_and_counts_only_doodles():
    photo = torch.zeros(2, 3, 16, 16)
    photo[:, :, 4:6] = 1.0  # a bright band two pixels high
    moved = torch.roll(photo, 2, dims=2)  # the band warped two pixels down, still inside its 8x8 block
    elsewhere = torch.roll(photo, 8, dims=2)  # the band in another block: the layout is wrong
    doodles = torch.tensor([True, True])
    assert layout_l1(moved, photo, doodles, 8).item() == 0.0
    assert layout_l1(moved, photo, doodles, 1).item() == pytest.approx(pixel_l1(moved, photo, None).item())
    assert layout_l1(elsewhere, photo, doodles, 8).item() > 0.0
    # Divided by the whole batch, as G_L1 is; no doodle, no term.
    first = layout_l1(elsewhere, photo, torch.tensor([True, False]), 8).item()
    assert first == pytest.approx(layout_l1(elsewhere, photo, doodles, 8).item() / 2)
    assert layout_l1(elsewhere, photo, torch.tensor([False, False]), 8).item() == 0.0
    assert layout_l1(elsewhere, photo, None, 8).item() == 0.0
    # A size the blocks do not divide keeps its last partial block.
    assert layout_l1(elsewhere[..., :13, :13], photo[..., :13, :13], doodles, 8).item() > 0.0


def test_layout_term_replaces_the_pixel_terms_on_doodles_and_real_steps_lower_it():
    with pytest.raises(SystemExit, match="add --l1-on-doodles false"):
        v2_trainer(upsample="transposed", output_scale=1, lambda_layout=100.0)
    with pytest.raises(SystemExit, match="--layout-pool 0"):
        v2_trainer(upsample="transposed", output_scale=1, lambda_layout=100.0, l1_on_doodles=False, layout_pool=0)
    config = dict(ngf=8, ndf=8, num_downs=5, batch_size=2, lr=2e-3, **PIX2PIX)
    torch.manual_seed(0)
    trainer = Pix2PixTrainer(TrainConfig(**config, l1_on_doodles=False, lambda_layout=100.0), Accelerator(cpu=True))
    sketch, photo = face_batch()
    doodles, pixels = torch.tensor([True, True]), torch.tensor([False, False])  # as the dataset marks doodles
    losses = [trainer.train_step(sketch, photo, None, None, None, pixels, doodles) for _ in range(25)]
    assert all(entry["G_L1"] == 0.0 for entry in losses)
    first = np.mean([entry["G_L1_layout"] for entry in losses[:3]])
    last = np.mean([entry["G_L1_layout"] for entry in losses[-3:]])
    assert first > 0 and last < 0.7 * first, (first, last)
    # Off by default, and zero for a batch with no doodles.
    assert v2_trainer(upsample="transposed", output_scale=1).train_step(sketch, photo)["G_L1_layout"] == 0.0
    assert trainer.train_step(sketch, photo, None, None, None, None, torch.tensor([False, False]))["G_L1_layout"] == 0.0


def test_train_cli_logs_the_layout_term_and_the_card_names_it(tmp_path, tiny_data_root, capsys):  # noqa: F811
    command = ["--quick", "--data-root", str(tiny_data_root), "--with-landmarks", "false", *NO_LOSS_NETWORKS,
               "--out", str(tmp_path / "run"), "--style-mix", "doodle=1", "--l1-on-doodles", "false",
               "--lambda-layout", "100", "--layout-pool", "4"]
    result = run_cli(main, command, capsys)
    assert result.returncode == 0, result.stderr[-2000:]
    logged = [json.loads(line) for line in (tmp_path / "run" / "log.jsonl").read_text().splitlines()]
    assert logged and all(entry["G_L1_layout"] > 0 and entry["G_L1"] == 0 for entry in logged)
    from sketch2face.training.export import export
    card = (export(tmp_path / "run" / "checkpoint.pt", tmp_path / "card") / "README.md").read_text()
    assert "held to the photo's 4x4 block means (G_L1_layout), weight 100" in card
    assert "--lambda-layout 100" in card and "--layout-pool 4" in card
    refused = run_cli(main, command[:-6] + ["--out", str(tmp_path / "refused"), "--lambda-layout", "100"], capsys)
    assert refused.returncode != 0 and "add --l1-on-doodles false" in refused.stderr
    assert "Traceback" not in refused.stderr
