"""Train the x2 face upscaler (sketch2face.networks.FaceUpscaler) on full-resolution photos.

    python -m sketch2face.training.train_upscaler --out runs/upscaler              # ~50 min on 2 CPU cores
    python -m sketch2face.training.train_upscaler --out runs/upscaler --resume     # carry on from the checkpoint
    python -m sketch2face.training.train_upscaler --out /tmp/smoke --steps 20      # seconds

It needs no sketches: a pair is a patch of a real photo (the target) and the same patch shrunk to
half size the way the training pipeline makes canvas photos (area averaging), then spoilt like a
generated face (a random blur, a faint checkerboard, JPEG and noise), so that the upscaler learns
to sharpen what the generator paints, not only clean photos, and to drop a checkerboard rather
than sharpen it. The loss is one named term, ``L1``.

Photos: london_neutral, london_smiling and 3dsk at their own resolution, never enlarged (their
faces are about as big as a 512x640 output's). CUFS photos (200x250) are too small to teach
detail at that size, and the composites are averages, smooth by construction. faces/canada
stays held out: evaluate_upscaler judges on it.
"""

from __future__ import annotations

import argparse
import json
import math
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import cv2
import numpy as np
import torch
import torch.nn.functional as F

from ..networks import FaceUpscaler, count_parameters
from ..tensors import image_to_tensor
from .data import _refuse_held_out, default_data_root, read_rgb
from .machine import machine_description

UPSCALER_PHOTO_FOLDERS = ("london_neutral", "london_smiling", "3dsk")


@dataclass
class UpscalerConfig:
    channels: int = 16
    blocks: int = 4
    steps: int = 8000
    batch_size: int = 32
    patch_size: int = 128  # of the full-size target; the input is half of it
    lr: float = 1e-3  # Adam, cosine-decayed to lr / 100
    min_photo_scale: float = 0.6  # photos are shrunk by a random factor in [this, 1], never enlarged
    max_blur_sigma: float = 1.2  # input pixels; generated faces are softer than shrunk photos
    seed: int = 0
    checkpoint_every: int = 250


def load_photos(root: Path | None = None, folders: tuple[str, ...] = UPSCALER_PHOTO_FOLDERS,
                limit: int | None = None) -> list[np.ndarray]:
    """RGB uint8 photos at their own resolution."""
    root = root or default_data_root()
    photos = []
    for folder in folders:
        path = root / "faces" / folder
        _refuse_held_out(path, root, allow_held_out=False)
        files = sorted(path.glob("*.jpg"))[:limit]
        if not files:
            raise FileNotFoundError(f"no photos in {path}")
        photos += [read_rgb(file) for file in files]
    return photos


def checkerboard(shape: tuple[int, int], rng: np.random.Generator, max_amplitude: float) -> np.ndarray:
    """A faint periodic pattern of period 2, 4 and 8 px whose strength wanders over the image: what
    a decoder of transposed convolutions paints (stage 4's faces show spectral peaks at all three
    periods, a few grey levels strong)."""
    height, width = shape
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    pattern = np.zeros(shape, np.float32)
    for period in (2, 4, 8):
        phase_x, phase_y = rng.uniform(0, 2 * np.pi, 2)
        along_x, along_y = np.cos(2 * np.pi * x / period + phase_x), np.cos(2 * np.pi * y / period + phase_y)
        weights = rng.normal(0.0, 1.0, 3)
        pattern += weights[0] * along_x * along_y + weights[1] * along_x + weights[2] * along_y
    strength = cv2.resize(rng.uniform(0.0, 1.0, (3, 3)).astype(np.float32), (width, height), interpolation=cv2.INTER_CUBIC)
    return pattern / (np.abs(pattern).max() + 1e-6) * strength * rng.uniform(1.0, max_amplitude)


def soften(image: np.ndarray, rng: np.random.Generator, max_blur_sigma: float, max_checkerboard: float = 8.0) -> np.ndarray:
    """What separates a generated face from a shrunk photo, roughly: blur, a checkerboard, JPEG, noise."""
    if rng.random() < 0.7:
        sigma = rng.uniform(0.2, max_blur_sigma)
        image = cv2.GaussianBlur(image, (0, 0), sigma)
    if rng.random() < 0.6:
        pattern = checkerboard(image.shape[:2], rng, max_checkerboard)[..., None]
        image = np.clip(image + pattern + 0.5, 0, 255).astype(np.uint8)
    if rng.random() < 0.3:
        quality = int(rng.integers(60, 96))
        encoded = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, quality])[1]
        image = cv2.imdecode(encoded, cv2.IMREAD_UNCHANGED)
    if rng.random() < 0.3:
        noise = rng.normal(0.0, rng.uniform(1.0, 4.0), image.shape)
        image = np.clip(image + noise, 0, 255).astype(np.uint8)
    return image


def make_pair(photo: np.ndarray, rng: np.random.Generator, config: UpscalerConfig) -> tuple[np.ndarray, np.ndarray]:
    """(input, target): a random patch near the photo's centre (the face), uint8 RGB."""
    scale = rng.uniform(config.min_photo_scale, 1.0)
    height, width = photo.shape[:2]
    size = (max(config.patch_size, round(width * scale)), max(config.patch_size, round(height * scale)))
    shrunk = cv2.resize(photo, size, interpolation=cv2.INTER_AREA)
    # Patch corners drawn so that the patch centre stays in the middle 60% (the face, not the wall).
    centre_x = rng.uniform(0.2, 0.8) * size[0]
    centre_y = rng.uniform(0.2, 0.8) * size[1]
    half = config.patch_size // 2
    left = int(np.clip(round(centre_x) - half, 0, size[0] - config.patch_size)) // 2 * 2
    top = int(np.clip(round(centre_y) - half, 0, size[1] - config.patch_size)) // 2 * 2
    target = shrunk[top: top + config.patch_size, left: left + config.patch_size]
    if rng.random() < 0.5:
        target = target[:, ::-1]
    target = np.ascontiguousarray(target)
    small = cv2.resize(target, (config.patch_size // 2, config.patch_size // 2), interpolation=cv2.INTER_AREA)
    return soften(small, rng, config.max_blur_sigma), target


def batch_of_pairs(photos: list[np.ndarray], rng: np.random.Generator, config: UpscalerConfig) -> tuple[torch.Tensor, torch.Tensor]:
    pairs = [make_pair(photos[rng.integers(len(photos))], rng, config) for _ in range(config.batch_size)]
    inputs = torch.stack([image_to_tensor(small) for small, _ in pairs])
    targets = torch.stack([image_to_tensor(target) for _, target in pairs])
    return inputs, targets


def learning_rate(config: UpscalerConfig, step: int) -> float:
    progress = min(step / max(config.steps, 1), 1.0)
    return config.lr * (0.01 + 0.99 * 0.5 * (1.0 + math.cos(math.pi * progress)))


def train_upscaler(config: UpscalerConfig, out_dir: Path, data_root: Path | None = None, resume: bool = False,
                   max_minutes: float | None = None, log_every: int = 25) -> FaceUpscaler:
    """Train, checkpointing to OUT/checkpoint.pt, and export OUT/upscaler/ (from_pretrained folder)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    checkpoint_path = out_dir / "checkpoint.pt"
    torch.manual_seed(config.seed)
    model = FaceUpscaler(channels=config.channels, blocks=config.blocks)
    optimiser = torch.optim.Adam(model.parameters(), lr=config.lr)
    rng = np.random.default_rng(config.seed)
    step, spent_s = 0, 0.0
    if resume and checkpoint_path.exists():
        state = torch.load(checkpoint_path, map_location="cpu", weights_only=False)
        if state["config"] != asdict(config):
            raise SystemExit(f"--resume: {checkpoint_path} was trained with another configuration: {state['config']}")
        model.load_state_dict(state["model"])
        optimiser.load_state_dict(state["optimiser"])
        rng.bit_generator.state = state["rng"]
        step, spent_s = state["step"], state["spent_s"]
        print(f"resumed from {checkpoint_path} at step {step}")
    photos = load_photos(data_root)
    print(f"{len(photos)} photos, {count_parameters(model)} parameters, {config.steps} steps of {config.batch_size}")

    def save() -> None:
        temporary = checkpoint_path.with_suffix(".tmp")
        torch.save({"config": asdict(config), "model": model.state_dict(), "optimiser": optimiser.state_dict(),
                    "rng": rng.bit_generator.state, "step": step, "spent_s": spent_s}, temporary)
        temporary.replace(checkpoint_path)  # never a half-written checkpoint

    model.train()
    started = time.perf_counter() - spent_s
    with (out_dir / "log.jsonl").open("a") as log:
        while step < config.steps:
            if max_minutes is not None and time.perf_counter() - started > max_minutes * 60:
                print(f"stopped by --max-minutes at step {step}")
                break
            for group in optimiser.param_groups:
                group["lr"] = learning_rate(config, step)
            inputs, targets = batch_of_pairs(photos, rng, config)
            losses = {"L1": F.l1_loss(model(inputs), targets)}
            optimiser.zero_grad(set_to_none=True)
            sum(losses.values()).backward()
            optimiser.step()
            step += 1
            spent_s = time.perf_counter() - started
            if step % log_every == 0 or step == config.steps:
                record = {"step": step, "seconds": round(spent_s, 1), "lr": optimiser.param_groups[0]["lr"],
                          **{name: round(value.item(), 5) for name, value in losses.items()}}
                log.write(json.dumps(record) + "\n")
                log.flush()
                print(json.dumps(record), flush=True)
            if step % config.checkpoint_every == 0:
                save()
    save()
    model.eval()
    export_dir = out_dir / "upscaler"
    model.save_pretrained(export_dir)
    summary = {"config": asdict(config), "steps_done": step, "seconds": round(spent_s), "machine": machine_description("cpu"),
               "photos": len(photos), "folders": list(UPSCALER_PHOTO_FOLDERS), "parameters": count_parameters(model)}
    (out_dir / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    (export_dir / "README.md").write_text(model_card(summary, out_dir))
    print(f"exported {export_dir}")
    return model


def train_command(config: UpscalerConfig, out_dir: Path) -> str:
    """The CLI call that reproduces a run: only the settings that differ from the defaults."""
    defaults = asdict(UpscalerConfig())
    flags = [f"--out {out_dir.as_posix()}"] + [f"--{name.replace('_', '-')} {value}" for name, value in asdict(config).items()
                                                if value != defaults[name]]
    return "python -m sketch2face.training.train_upscaler " + " ".join(flags)


def model_card(summary: dict, out_dir: Path) -> str:
    config = UpscalerConfig(**summary["config"])
    return f"""---
license: mit
library_name: sketch2face
pipeline_tag: image-to-image
tags:
- super-resolution
- face
---

# sketch2face x2 face upscaler

The last network stage of [sketch2face](https://huggingface.co/spaces): it takes the generator's
256x320 face to 512x640, so that a drawing on the 512x640 Sketchpad comes back at its own size.

## Model
- `sketch2face.networks.FaceUpscaler(channels={config.channels}, blocks={config.blocks})`: a bilinear x2 of the image
  plus a correction painted at the input size ({config.blocks} residual blocks of {config.channels} channels) and
  spread to the four sub-pixels by a pixel shuffle; {summary['parameters']:,} parameters, fp32 safetensors.
- Images in [-1, 1], RGB, any size; the output is twice the height and width.

## Training
- {summary['steps_done']} steps of batch {config.batch_size}, Adam lr {config.lr:g} with cosine decay, L1 loss only,
  {summary['seconds'] / 60:.0f} min on {summary['machine']}.
  `{train_command(config, out_dir)}`
- Data: {summary['photos']} photos ({', '.join(summary['folders'])}; Face Research Lab, CC BY 4.0 /
  educational use) at their own resolution or shrunk (x{config.min_photo_scale:g}-1), never enlarged. Each pair
  is a {config.patch_size}x{config.patch_size} patch and the same patch shrunk to half by area averaging, then
  spoilt like a generated face: blur (sigma up to {config.max_blur_sigma:g} px), a faint period-2/4/8 checkerboard,
  JPEG and noise. No sketches and no generator outputs were used.
- Never used: faces/canada (held out: it is what `sketch2face.training.evaluate_upscaler` judges on),
  CUFS test, and the eval doodles and edge maps.

## Limits
- It sharpens what the generator painted; it cannot add a likeness or features that are not there.
- Trained on young adults' frontal photos; other content is upscaled less well.
"""


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=Path("runs/upscaler"))
    parser.add_argument("--data-root", type=Path, default=None, help="default: $SKETCH2FACE_DATA or ../shared/data")
    parser.add_argument("--resume", action="store_true", help="continue from OUT/checkpoint.pt if it exists")
    parser.add_argument("--max-minutes", type=float, default=None, help="stop (and export) after this long")
    for name, value in asdict(UpscalerConfig()).items():
        parser.add_argument(f"--{name.replace('_', '-')}", type=type(value), default=value)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    config = UpscalerConfig(**{name: getattr(args, name) for name in asdict(UpscalerConfig())})
    train_upscaler(config, args.out, args.data_root, resume=args.resume, max_minutes=args.max_minutes)


if __name__ == "__main__":
    main()
