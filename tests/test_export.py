"""Exporting checkpoints, and exporting several of one lineage as their weight average."""

import dataclasses
import json

import torch

from sketch2face.training.export import STAGES_FILE, export, main
from sketch2face.networks import UNetGenerator
from sketch2face.training.train import TrainConfig, train

from .cli import run_cli
from .test_data import tiny_data_root  # noqa: F401  (fixture)


def quick_run(out_dir, data_root, seed=0, init_from=None):
    # No frozen loss networks: this tests the lineage bookkeeping, not the losses.
    config = dataclasses.replace(TrainConfig.quick(), with_landmarks=False, seed=seed, lambda_perceptual=0.0,
                                 lambda_identity=0.0)
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
    assert stages[2] == {"average_of": [(tmp_path / "base").as_posix(), (tmp_path / "tune").as_posix()]}
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


def test_a_missing_checkpoint_is_refused_in_one_line(tmp_path, capsys):
    result = run_cli(main, ["--checkpoint", str(tmp_path / "gone.pt"), "--out", str(tmp_path / "out")], capsys)
    assert result.returncode == 2 and f"no checkpoint file at {tmp_path / 'gone.pt'}" in result.stderr
    assert "Traceback" not in result.stderr and not (tmp_path / "out").exists()
