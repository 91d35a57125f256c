"""Export a training checkpoint as a Hugging Face model folder with a model card.

    python -m sketch2face.training.export --checkpoint runs/main/checkpoint.pt --out weights \
        --metrics outputs/eval/metrics.json

writes weights/config.json + weights/model.safetensors + weights/README.md (the model card) and
weights/training_stages.json (the runs that made it, read again when a fine-tune starts from it).
Several checkpoints of one lineage (fine-tuned from one another) export as their uniform weight
average, a "model soup":

    python -m sketch2face.training.export --checkpoint runs/stage4/checkpoint.pt runs/stage5/checkpoint.pt --out weights

An exported folder can be one of them (its training_stages.json gives its lineage): a fine-tune
averaged with the generator it started from, ``--checkpoint runs/tune/checkpoint.pt weights``.

An exported folder's card can be rendered again (after new metrics, or a template change) from
the folder alone: ``--refresh-card weights --metrics docs/metrics.json``.

Publishing is one more step, with a write token (not possible on the offline build machines):

    python -c "from sketch2face.networks import UNetGenerator; \
        UNetGenerator.from_pretrained('weights').push_to_hub('USER/sketch2face-pix2pix')"
    # then upload weights/README.md as the repo's model card:
    huggingface-cli upload USER/sketch2face-pix2pix weights/README.md README.md
    # and the x2 upscaler, which the pipeline loads from the repo's upscaler/ subfolder:
    huggingface-cli upload USER/sketch2face-pix2pix weights/upscaler upscaler
    # and the generator for shaded sketches (its shaded_sketches/ subfolder), when there is one:
    huggingface-cli upload USER/sketch2face-pix2pix weights/shaded_sketches shaded_sketches

A generator for shaded sketches exports into the main folder's subfolder, e.g. a fine-tune
averaged with the generator it started from:

    python -m sketch2face.training.export --checkpoint runs/tune/checkpoint.pt weights --out weights/shaded_sketches
"""

from __future__ import annotations

import argparse
import json
from dataclasses import asdict
from pathlib import Path

import torch

from .data import CUFS_STYLE_WEIGHTS
from ..networks import UNetGenerator, count_parameters
from ..pipeline import SHADED_SKETCHES_SUBFOLDER, UPSCALER_SUBFOLDER
from .config import GENERATOR_SHAPE, TrainConfig, generator_from_config, saved_config
from .upsampling import balance_output_phases


def generator_from_checkpoint(checkpoint: Path) -> tuple[UNetGenerator, dict]:
    """A checkpoint.pt, or an exported folder (its last training stage stands in for the state)."""
    if checkpoint.is_dir():
        stage = _last_stage(checkpoint)
        generator = UNetGenerator.from_pretrained(checkpoint, strict=True)
        return generator.eval(), {"config": stage["config"], "step": stage["steps"], "epoch": stage["epochs"]}
    state = torch.load(checkpoint, map_location="cpu", weights_only=True)
    generator = generator_from_config(state["config"])
    generator.load_state_dict(state["generator"])
    return generator.eval(), state


def average_generators(checkpoints: list[Path]) -> tuple[UNetGenerator, dict]:
    """The uniform weight average of generators that share a training lineage (`averaged_stages`
    checks that). Fine-tunes of one another sit in one basin of the loss, so their average lies
    between them instead of off a cliff. Batch-norm running statistics are averaged too; integer
    counters are kept.
    """
    loaded = [generator_from_checkpoint(checkpoint) for checkpoint in checkpoints]
    shapes = {tuple(saved_config(state["config"])[name] for name in GENERATOR_SHAPE) for _, state in loaded}
    if len(shapes) > 1:
        raise ValueError(f"cannot average generators of different shapes ({', '.join(GENERATOR_SHAPE)}): {sorted(shapes)}")
    generator, first_state = loaded[0]
    states = [candidate.state_dict() for candidate, _ in loaded]
    averaged = {
        name: torch.stack([state[name] for state in states]).mean(dim=0) if value.is_floating_point() else value
        for name, value in states[0].items()
    }
    generator.load_state_dict(averaged)
    if any(state["config"].get("balance_output_phases") for _, state in loaded):
        balance_output_phases(generator)  # the average keeps the constraint its fine-tune trained under
    return generator, first_state


def _read_json(path: Path) -> dict | list:
    return json.loads(path.read_text()) if path.exists() else {}


MODEL_CARD_TEMPLATE = Path(__file__).with_name("model_card.md")
STAGES_FILE = "training_stages.json"  # written beside every export, so a fine-tune of it knows its history


def training_stages(checkpoint: Path) -> list[dict]:
    """The runs that made a checkpoint, oldest first. A fine-tune names its parent as ``init_from``
    in its train_config.json: a checkpoint, whose run is followed in turn while its files exist,
    or an exported generator folder, whose own history is in its training_stages.json."""
    stages: list[dict] = []
    seen: set[Path] = set()
    current: Path | None = checkpoint
    while current is not None and current.exists() and current.resolve() not in seen:
        seen.add(current.resolve())
        if current.is_dir():  # an exported folder: its history was written beside it
            stages[:0] = _read_json(current / STAGES_FILE) or []
            break
        state = torch.load(current, map_location="cpu", weights_only=True)
        run_dir = current.parent
        provenance = _read_json(run_dir / "train_config.json")
        summary = _read_json(run_dir / "summary.json")
        parent = provenance.get("init_from")
        stages.insert(0, {"run": run_dir.as_posix(), "steps": state["step"], "epochs": state["epoch"],
                          "config": state["config"], "init_from": parent, "max_minutes": provenance.get("max_minutes"),
                          "seconds": summary.get("seconds"), "device": summary.get("device"),
                          "machine": summary.get("machine")})
        current = Path(parent) if parent else None
    return stages


def _last_stage(folder: Path) -> dict:
    stages = [stage for stage in _read_json(folder / STAGES_FILE) or [] if "config" in stage]
    if not stages:
        raise ValueError(f"{folder} has no {STAGES_FILE} with a training stage: re-export it from its checkpoint")
    return stages[-1]


def _run_of(checkpoint: Path) -> str:
    """The run a checkpoint.pt or an exported folder's generator came from."""
    return _last_stage(checkpoint)["run"] if checkpoint.is_dir() else checkpoint.parent.as_posix()


def averaged_stages(checkpoints: list[Path]) -> list[dict]:
    """The union of the checkpoints' lineages, oldest first, then one entry for the averaging.
    Independently initialised networks would average to noise, so all must share a first stage."""
    lineages = [training_stages(checkpoint) for checkpoint in checkpoints]
    roots = {(lineage[0]["run"] if lineage else None) for lineage in lineages}
    if len(roots) > 1 or None in roots:
        raise ValueError("cannot average generators that were not fine-tuned from one common run; "
                         f"their first stages are {sorted(map(str, roots))}")
    stages: list[dict] = []
    for lineage in sorted(lineages, key=len, reverse=True):
        known = [stage.get("run", stage) for stage in stages]
        previous_run = None  # merged lineages interleave: each stage names the run it was fine-tuned from
        for stage in lineage:
            if stage.get("run", stage) not in known:
                stages.append({**stage, "follows": previous_run} if "config" in stage and previous_run else stage)
            previous_run = stage.get("run", previous_run)
    return stages + [{"average_of": [_run_of(checkpoint) for checkpoint in checkpoints],
                      "sources": [_averaged_runs(checkpoint) for checkpoint in checkpoints],
                      "export_arguments": [checkpoint.as_posix() for checkpoint in checkpoints]}]


def _averaged_runs(checkpoint: Path) -> list[str]:
    """The runs behind one thing being averaged: several when it is an exported average itself."""
    if checkpoint.is_dir():
        last = (_read_json(checkpoint / STAGES_FILE) or [{}])[-1]
        if "average_of" in last:
            return [run for source in _sources(last) for run in source]
    return [_run_of(checkpoint)]


def _sources(average: dict) -> list[list[str]]:
    """The runs behind each thing an average entry averaged (older entries list one run each)."""
    return average.get("sources") or [[run] for run in average["average_of"]]


def train_command(stage: dict) -> str:
    """The CLI call that reproduces a stage: only the settings that differ from TrainConfig's defaults."""
    defaults = asdict(TrainConfig())
    flags = [f"--out {stage['run']}"]
    if stage["init_from"]:
        flags.append(f"--init-from {stage['init_from']}")
    if stage.get("max_minutes"):
        flags.append(f"--max-minutes {stage['max_minutes']:g}")
    for name, value in saved_config(stage["config"]).items():
        if name in defaults and value != defaults[name]:
            flags.append(f"--{name.replace('_', '-')} {str(value).lower() if isinstance(value, bool) else value}")
    return "python -m sketch2face.training.train " + " ".join(flags)


def describe_stages(stages: list[dict]) -> list[str]:
    lines = []
    numbers = {}  # run -> its stage number, to name the parent of a branch

    def name(run: str) -> str:
        return f"stage {numbers[run]}" if run in numbers else run

    for stage in stages:
        if "average_of" in stage:
            sources = _sources(stage)
            if all(len(runs) == 1 for runs in sources):
                averaged = "the final generators of " + " and ".join(name(runs[0]) for runs in sources)
            else:
                averaged = " and ".join(f"the final generator of {name(runs[0])}" if len(runs) == 1
                                        else f"the average of {' and '.join(map(name, runs))}" for runs in sources)
            checkpoints = " ".join(stage.get("export_arguments") or [f"{run}/checkpoint.pt" for run in stage["average_of"]])
            lines += [f"- Then {averaged} were averaged weight by weight (uniform",
                      f"  weights). `python -m sketch2face.training.export --checkpoint {checkpoints}`"]
            continue
        number = numbers[stage["run"]] = len(numbers) + 1
        config = stage["config"]
        took = f", {stage['seconds'] / 60:.0f} min on {stage.get('machine') or stage['device']}" if stage.get("seconds") else ""
        # The run it started from: recorded when lineages were merged, else the checkpoint's folder.
        parent = stage.get("follows") or (Path(stage["init_from"]).parent.as_posix() if stage["init_from"] else None)
        before = name(parent) if parent in numbers and numbers[parent] != number - 1 else "the stage before"
        if not stage["init_from"]:
            start = "from scratch"
        elif not stage["init_from"].endswith(".pt"):
            start = f"fine-tuned from {before}'s exported generator, with a fresh discriminator"
            if previous_upsample(stages, stage) == "transposed" and saved_config(config)["upsample"] == "resize":
                start += " and its transposed kernels refitted for resize upsampling (training/upsampling.py)"
        else:
            start = f"fine-tuned from {before}"
        lines += [
            f"- Stage {number}, {start}: {stage['steps']} steps of batch {config['batch_size']}{took}; "
            + (f"every photo drawn only as {config['style_mix']}; CUFS pairs appear " if config.get("style_mix") else
               f"CUFS pairs keep their artist sketch {config.get('artist_weight', CUFS_STYLE_WEIGHTS['artist']):.0%} "
               "of the time and appear ")
            + f"{config.get('cufs_repeats', 1)}x per epoch"
            + (f"; extra inner-face L1, weight {config['lambda_face']:g}" if config.get("lambda_face") else "")
            + ("; decoder frozen" if config.get("freeze_decoder") else "")
            + ("; encoder frozen" if config.get("freeze_encoder") else "")
            + (f"; doodle faces held to its start's by an L1 (G_teacher), weight {config['lambda_teacher']:g}"
               if config.get("lambda_teacher") else "")
            + (f"; faces held to those of the sketch moved a few pixels (G_shift), weight {config['lambda_shift']:g}"
               if config.get("lambda_shift") else "")
            + (f"; doodles held to the photo's {config['layout_pool']}x{config['layout_pool']} block means "
               f"(G_L1_layout), weight {config['lambda_layout']:g}, in place of the pixel terms"
               if config.get("lambda_layout") else "")
            + f". `{train_command(stage)}`",
        ]
    return lines


def previous_upsample(stages: list[dict], stage: dict) -> str | None:
    """How the stage before ``stage`` upsampled (None for the first)."""
    index = stages.index(stage)
    earlier = [candidate for candidate in stages[:index] if "config" in candidate]
    return saved_config(earlier[-1]["config"])["upsample"] if earlier else None


def objective(config: dict) -> str:
    """The generator's loss as the card states it, e.g. 'cGAN + 100 * L1'."""
    named = [("lambda_l1", "L1"), ("lambda_feat", "D feature matching"), ("lambda_perceptual", "darknet-tiny perceptual"),
             ("lambda_identity", "SFace identity (1 - cosine)")]
    gan = "cGAN" if config["gan_mode"] == "vanilla" else f"{config['gan_mode']} cGAN"
    if config["num_scales"] > 1:
        gan += f" ({config['num_scales']} discriminator scales)"
    return " + ".join([gan] + [f"{config[name]:g} * {term}" for name, term in named if config[name] > 0])


def group_limits(metrics: dict | None) -> list[str]:
    """The measured identity gap between groups of test faces, for the card's limits."""
    identity = (metrics or {}).get("cufs_test", {}).get("identity", {})
    groups = identity.get("by_group")
    if not groups:
        return []
    raw = metrics["cufs_test"]["raw_sketch_identity"]["by_group"]
    parts = [f"{result['rank1']:.0%} of the {result['faces']} {group} (their raw sketches: {raw[group]['rank1']:.0%})"
             for group, result in groups.items()]
    return ["- Measured on CUFS test, rank-1 identity differs by group:", *(f"  {part};" for part in parts[:-1]),
            f"  {parts[-1]}."]


def model_card(generator: UNetGenerator, train_state: dict, metrics: dict | None, stages: list[dict] | None = None,
               upscaler: bool = False, shaded_sketches: bool = False) -> str:
    """The model card (weights/README.md), rendered from the model_card.md template beside this file."""
    from huggingface_hub import ModelCard, ModelCardData

    config = saved_config(train_state["config"])
    face_term = any(stage.get("config", {}).get("lambda_face") for stage in stages or [{"config": config}])
    loss = objective(config) + (" (+ an extra L1 on the inner face, in the stages that say so)" if face_term else "")
    stage_lines = describe_stages(stages) if stages else [
        f"- {train_state['step']} steps of batch {config['batch_size']} ({train_state['epoch']} epochs counted)."]
    card_data = ModelCardData(license="mit", library_name="sketch2face", pipeline_tag="image-to-image",
                              tags=["pix2pix", "sketch-to-face", "gan", "image-to-image"])
    card = ModelCard.from_template(
        card_data,
        template_path=str(MODEL_CARD_TEMPLATE),
        loss=loss,
        config=config,
        parameters=count_parameters(generator),
        stage_lines=stage_lines,
        cufs=(metrics or {}).get("cufs_test"),
        canada=(metrics or {}).get("canada", {}),
        kid=(metrics or {}).get("kid"),
        shift_average=(metrics or {}).get("shift_average", False),
        fmt_kid=lambda row: "n/a" if not row or row.get("kid_x1000") is None else f"{row['kid_x1000']:.0f}",
        group_lines=group_limits(metrics),
        percent=lambda fraction: f"{fraction:.0%}",
        upscaler=upscaler,
        shaded_sketches=shaded_sketches,
        v2_data=any(saved_config(stage.get("config", {})).get("upsample") == "resize" for stage in stages or [{"config": config}]),
        height=config["output_scale"] * 320,
        width=config["output_scale"] * 256,
    )
    return str(card).rstrip("\n") + "\n"


def export(checkpoint: Path | list[Path], out_dir: Path, metrics_path: Path | None = None) -> Path:
    """One checkpoint exports as it is; several export as their weight average."""
    checkpoints = [checkpoint] if isinstance(checkpoint, Path) else list(checkpoint)
    missing = [str(path) for path in checkpoints if not (path.is_file() or (path / "model.safetensors").is_file())]
    if missing:
        raise ValueError(f"no checkpoint file or exported generator at {', '.join(missing)}")
    if len(checkpoints) == 1 and checkpoints[0].is_dir():
        raise ValueError(f"{checkpoints[0]} is already exported: an exported folder is only read to average it with others")
    if len(checkpoints) == 1:
        generator, state = generator_from_checkpoint(checkpoints[0])
        stages = training_stages(checkpoints[0])
    else:
        stages = averaged_stages(checkpoints)  # checks the lineage before any weights are loaded
        generator, state = average_generators(checkpoints)
    metrics = json.loads(metrics_path.read_text()) if metrics_path else None
    generator.save_pretrained(out_dir)
    (out_dir / STAGES_FILE).write_text(json.dumps(stages, indent=2) + "\n")
    (out_dir / "README.md").write_text(model_card(generator, state, metrics, stages, **_subfolders(out_dir)))
    return out_dir


def refresh_card(folder: Path, metrics_path: Path | None = None) -> Path:
    """Render ``folder``'s model card again from what the folder holds: the generator, its
    training_stages.json (the last stage's settings and step count) and, optionally, metrics."""
    stages = _read_json(folder / STAGES_FILE) or []
    generator, state = generator_from_checkpoint(folder)
    metrics = json.loads(metrics_path.read_text()) if metrics_path else None
    (folder / "README.md").write_text(model_card(generator, state, metrics, stages, **_subfolders(folder)))
    return folder / "README.md"


def _subfolders(folder: Path) -> dict[str, bool]:
    """Which of the networks served beside the generator the folder holds (the card names them)."""
    return {"upscaler": (folder / UPSCALER_SUBFOLDER).is_dir(),
            "shaded_sketches": (folder / SHADED_SKETCHES_SUBFOLDER).is_dir()}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", type=Path, nargs="+", default=[Path("runs/main/checkpoint.pt")],
                        help="one checkpoint.pt, or several of one lineage (checkpoints or exported folders) to export their weight average")
    parser.add_argument("--out", type=Path, default=Path("weights"))
    parser.add_argument("--metrics", type=Path, default=None, help="metrics.json from sketch2face.training.evaluate")
    parser.add_argument("--refresh-card", type=Path, default=None, metavar="FOLDER",
                        help="only render FOLDER/README.md again from the exported folder itself")
    args = parser.parse_args(argv)
    try:
        if args.refresh_card:
            print(refresh_card(args.refresh_card, args.metrics))
            return
        print(export(args.checkpoint, args.out, args.metrics))
    except ValueError as error:
        parser.exit(2, f"export: {error}\n")


if __name__ == "__main__":
    main()
