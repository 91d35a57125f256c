import json
import subprocess
import sys

import numpy as np
import torch
from accelerate import Accelerator

from sketch2face.networks import UNetGenerator
from sketch2face.train import Pix2PixTrainer, TrainConfig

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
    assert set(losses[0]) == {"G_GAN", "G_L1", "D_real", "D_fake"}
    first = np.mean([entry["G_L1"] for entry in losses[:3]])
    last = np.mean([entry["G_L1"] for entry in losses[-3:]])
    assert last < 0.7 * first, (first, last)
    assert trainer.step == 25


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


def test_train_cli_quick_runs_saves_and_resumes(tmp_path, tiny_data_root):  # noqa: F811
    command = [sys.executable, "-m", "sketch2face.train", "--quick", "--out", str(tmp_path / "run"),
               "--data-root", str(tiny_data_root), "--with-landmarks", "false"]
    first = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert first.returncode == 0, first.stderr[-2000:]
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["steps"] == 2 and summary["records"] == 3  # 2 CUFS + 1 face photo, no held-out data
    assert "G_L1" in (tmp_path / "run" / "log.jsonl").read_text()
    assert (tmp_path / "run" / "generator" / "model.safetensors").is_file()
    assert "train:" in first.stderr  # tqdm progress

    again = subprocess.run(command + ["--resume", "--epochs", "4"], capture_output=True, text=True, timeout=300)
    assert again.returncode == 0, again.stderr[-2000:]
    assert "resumed from" in again.stdout
    assert json.loads((tmp_path / "run" / "summary.json").read_text())["steps"] == 4
