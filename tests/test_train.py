import argparse
import dataclasses
import json

import numpy as np
import pytest
import torch
from accelerate import Accelerator

from sketch2face.networks import UNetGenerator
from sketch2face.training.train import (
    Pix2PixTrainer,
    TrainConfig,
    _elapsed_in_earlier_runs,
    budgeted_progress,
    config_flag_types,
    face_l1,
    main,
    parse_args,
)

from .cli import run_cli

from .test_data import tiny_data_root  # noqa: F401  (fixture)
from .test_styles import synthetic_face


def face_batch():
    photo = torch.from_numpy(synthetic_face(64, 64).astype(np.float32) / 127.5 - 1).permute(2, 0, 1)
    sketch = photo.mean(0, keepdim=True)
    return sketch[None].repeat(2, 1, 1, 1), photo[None].repeat(2, 1, 1, 1)


def test_real_training_steps_lower_the_l1_loss():
    torch.manual_seed(0)
    config = TrainConfig(ngf=8, ndf=8, num_downs=5, batch_size=2, lr=2e-3)
    trainer = Pix2PixTrainer(config, Accelerator(cpu=True))
    sketch, photo = face_batch()
    losses = [trainer.train_step(sketch, photo) for _ in range(25)]
    assert set(losses[0]) == {"G_GAN", "G_L1", "G_L1_face", "D_real", "D_fake"}
    assert all(entry["G_L1_face"] == 0.0 for entry in losses)  # off by default: plain pix2pix
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


def test_face_term_is_weighted_and_trains_the_masked_region():
    sketch, photo = face_batch()
    mask = torch.zeros(2, 1, 64, 64)
    mask[:, :, 20:44, 20:44] = 1.0

    def trainer_with(lambda_face):
        torch.manual_seed(0)
        config = TrainConfig(ngf=8, ndf=8, num_downs=5, batch_size=2, lr=2e-3, lambda_face=lambda_face)
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
    trainer = Pix2PixTrainer(TrainConfig(ngf=4, ndf=4, num_downs=5, epochs=10, decay_from_epoch=6), Accelerator(cpu=True))
    assert trainer.set_learning_rate(3.0) == 2e-4
    assert abs(trainer.set_learning_rate(8.0) - 1e-4) < 1e-12
    assert trainer.set_learning_rate(10.0) == 0.0


def test_checkpoint_round_trip_restores_weights_and_step(tmp_path):
    config = TrainConfig(ngf=4, ndf=4, num_downs=5, batch_size=2)
    first = Pix2PixTrainer(config, Accelerator(cpu=True))
    sketch, photo = face_batch()
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
               "--data-root", str(tiny_data_root), "--with-landmarks", "false"]
    first = run_cli(main, command, capsys)
    assert first.returncode == 0, first.stderr[-2000:]
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["steps"] == 2 and summary["records"] == 3  # 2 CUFS + 1 face photo, no held-out data
    assert "G_L1" in (tmp_path / "run" / "log.jsonl").read_text()
    assert (tmp_path / "run" / "generator" / "model.safetensors").is_file()
    assert "train:" in first.stderr  # tqdm progress

    again = run_cli(main, command + ["--resume", "--epochs", "4"], capsys)
    assert again.returncode == 0, again.stderr[-2000:]
    assert "resumed from" in again.stdout
    assert json.loads((tmp_path / "run" / "summary.json").read_text())["steps"] == 4


def test_train_cli_fine_tunes_from_another_run(tmp_path, tiny_data_root, capsys):  # noqa: F811
    base = ["--quick", "--data-root", str(tiny_data_root),
            "--with-landmarks", "false"]
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
    trainer = Pix2PixTrainer(TrainConfig(ngf=4, ndf=4, num_downs=5, batch_size=2), Accelerator(cpu=True))
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
            "--with-landmarks", "false"]
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
