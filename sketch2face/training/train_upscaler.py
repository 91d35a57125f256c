"""Train the x2 face upscaler (sketch2face.networks.FaceUpscaler).

    python -m sketch2face.training.train_upscaler --out runs/upscaler              # on photos, ~50 min on 2 CPU cores
    python -m sketch2face.training.train_upscaler --out runs/upscaler --resume     # carry on from the checkpoint
    python -m sketch2face.training.train_upscaler --out /tmp/smoke --steps 20      # seconds
    python -m sketch2face.training.train_upscaler --out runs/upscaler_detail --inputs generated --batch-size 16 \
        --steps 2500 --lambda-perceptual 0.5 --lambda-gan 0.05 --low-pass-sigma 6  # on the generator's faces

Two kinds of input (``--inputs``):

- ``photos``: no sketches. A pair is a patch of a real photo (the target) and the same patch
  shrunk to half size the way the training pipeline makes canvas photos (area averaging), then
  spoilt like a generated face (a random blur, a faint checkerboard, JPEG and noise).
- ``generated``: the generator's own 256x320 faces for synthetic sketches of the photos, against
  the true photos at 512x640 (generated_pairs.py), so it learns to fix what the generator paints.
  A sketch does not say what colour a face is, so ``--low-pass-sigma`` makes the photo teach only
  its detail: below that scale the target keeps the generated face's own colours.

The loss terms are named and weighted: ``L1``, ``perceptual`` (darknet-tiny) and ``G_GAN`` for the
upscaler; ``D_real`` and ``D_fake`` for its patch discriminator.

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

from ..networks import FaceUpscaler, PatchDiscriminator, count_parameters, init_weights
from ..tensors import image_to_tensor
from . import generated_pairs, objectives
from .checkpoints import save_atomically
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
    # What the upscaler learns from: "photos" (shrunk and spoilt, above) or "generated" (the
    # generator's own faces against the true photos, generated_pairs.py).
    inputs: str = "photos"
    draws: int = 3  # generated: sketches (and so faces) per photo
    # The named loss terms' weights. L1 alone picks the mean of the possible details, which is
    # smooth; the perceptual (darknet-tiny) and adversarial terms ask for a photo's texture.
    lambda_l1: float = 1.0
    lambda_perceptual: float = 0.0
    lambda_gan: float = 0.0
    ndf: int = 32  # the patch discriminator's width, when lambda_gan > 0
    # generated: a sketch does not say what colour a face is, so the photo teaches only detail.
    # Below this scale (Gaussian sigma, in output pixels) the target keeps the generator's own
    # image and the discriminator sees only what is above it. 0: the photo as it is.
    low_pass_sigma: float = 0.0


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


def batch_of_generated_crops(pairs: generated_pairs.GeneratedPairs, rng: np.random.Generator,
                             config: UpscalerConfig) -> tuple[torch.Tensor, torch.Tensor]:
    """Aligned crops: patch_size/2 of a generated face and patch_size of its photo at 2x, the
    crop's centre in the middle 70% of the canvas (the face, mostly)."""
    half = config.patch_size // 2
    height, width = pairs.faces.shape[1:3]
    inputs, targets = [], []
    for _ in range(config.batch_size):
        index = rng.integers(len(pairs.faces))
        top = int(rng.integers(round(0.15 * height), round(0.85 * height) - half + 1))
        left = int(rng.integers(round(0.15 * width), round(0.85 * width) - half + 1))
        face = pairs.faces[index, top: top + half, left: left + half]
        photo = pairs.photos[index, 2 * top: 2 * top + config.patch_size, 2 * left: 2 * left + config.patch_size]
        if rng.random() < 0.5:
            face, photo = face[:, ::-1], photo[:, ::-1]
        inputs.append(image_to_tensor(np.ascontiguousarray(face)))
        targets.append(image_to_tensor(np.ascontiguousarray(photo)))
    return torch.stack(inputs), torch.stack(targets)


def training_pairs(config: UpscalerConfig, out_dir: Path, data_root: Path | None, generator: str | None):
    """``next_batch()`` for the configured inputs, and a description of the data for the card."""
    rng = np.random.default_rng(config.seed)
    if config.inputs == "photos":
        photos = load_photos(data_root)
        return rng, (lambda: batch_of_pairs(photos, rng, config)), {"photos": len(photos), "folders": list(UPSCALER_PHOTO_FOLDERS)}
    if config.inputs != "generated":
        raise SystemExit(f"--inputs must be photos or generated, not {config.inputs!r}")
    pairs, description = generated_pairs.pairs_for_side(out_dir, data_root, generator, config.draws, config.seed)

    def next_batch() -> tuple[torch.Tensor, torch.Tensor]:
        faces, photos = batch_of_generated_crops(pairs, rng, config)
        if config.low_pass_sigma > 0:
            photos = keep_generator_colours(faces, photos, config.low_pass_sigma)
        return faces, photos

    return rng, next_batch, description


def gaussian_blur(images: torch.Tensor, sigma: float) -> torch.Tensor:
    """A separable Gaussian blur (reflected borders) that gradients flow through."""
    radius = max(1, math.ceil(3 * sigma))
    offsets = torch.arange(-radius, radius + 1, dtype=images.dtype, device=images.device)
    kernel = torch.exp(-0.5 * (offsets / sigma) ** 2)
    kernel = (kernel / kernel.sum()).repeat(images.shape[1], 1, 1, 1)  # (C, 1, 1, K): one per channel
    blurred = F.conv2d(F.pad(images, (radius, radius, 0, 0), mode="reflect"), kernel, groups=images.shape[1])
    return F.conv2d(F.pad(blurred, (0, 0, radius, radius), mode="reflect"), kernel.transpose(2, 3), groups=images.shape[1])


def keep_generator_colours(faces: torch.Tensor, photos: torch.Tensor, sigma: float) -> torch.Tensor:
    """The target: the photo's detail above ``sigma`` on the generated face's own colours and
    shading below it (the face enlarged bilinearly, as the upscaler's base is)."""
    base = F.interpolate(faces, size=photos.shape[-2:], mode="bilinear", align_corners=False)
    return (photos - gaussian_blur(photos, sigma) + gaussian_blur(base, sigma)).clamp(-1.0, 1.0)


class UpscalerLosses:
    """The named terms: ``L1`` and ``perceptual`` against the true photo, ``G_GAN`` from a patch
    discriminator that has seen real photo patches; ``D_real`` and ``D_fake`` train that
    discriminator (least squares, unconditional: a generated face and its photo differ in content,
    so a discriminator shown both would judge the content, not the texture)."""

    def __init__(self, config: UpscalerConfig, perceptual_features: objectives.FeatureNetwork | None = None):
        """``perceptual_features`` replaces darknet-tiny's feature maps when given."""
        self.config = config
        self.features = None
        if config.lambda_perceptual > 0 and perceptual_features is None:
            from .train import load_perceptual_features  # train.py needs accelerate: only when this term is on
            perceptual_features = load_perceptual_features(torch.device("cpu"))
        if config.lambda_perceptual > 0:
            self.features = perceptual_features
        self.discriminator = None
        if config.lambda_gan > 0:
            self.discriminator = PatchDiscriminator(sketch_channels=0, ndf=config.ndf)
            init_weights(self.discriminator)
            self.optimiser = torch.optim.Adam(self.discriminator.parameters(), lr=config.lr, betas=(0.5, 0.999))

    def judge(self, photo: torch.Tensor) -> torch.Tensor:
        if self.config.low_pass_sigma > 0:  # texture only: colours are the generator's to choose
            photo = photo - gaussian_blur(photo, self.config.low_pass_sigma)
        return self.discriminator(photo[:, :0], photo)

    def generator_terms(self, upscaled: torch.Tensor, photo: torch.Tensor) -> dict[str, torch.Tensor]:
        terms = {"L1": F.l1_loss(upscaled, photo)}
        if self.features is not None:
            terms["perceptual"] = objectives.perceptual_loss(upscaled, photo, self.features)
        if self.discriminator is not None:
            self.discriminator.requires_grad_(False)
            terms["G_GAN"] = objectives.adversarial_loss(self.judge(upscaled), True, "lsgan", for_discriminator=False)
            self.discriminator.requires_grad_(True)
        return terms

    def weighted(self, terms: dict[str, torch.Tensor]) -> torch.Tensor:
        weights = {"L1": self.config.lambda_l1, "perceptual": self.config.lambda_perceptual, "G_GAN": self.config.lambda_gan}
        return sum(weights[name] * value for name, value in terms.items())

    def update_discriminator(self, upscaled: torch.Tensor, photo: torch.Tensor) -> dict[str, torch.Tensor]:
        if self.discriminator is None:
            return {}
        terms = {"D_real": objectives.adversarial_loss(self.judge(photo), True, "lsgan"),
                 "D_fake": objectives.adversarial_loss(self.judge(upscaled.detach()), False, "lsgan")}
        self.optimiser.zero_grad(set_to_none=True)
        (0.5 * (terms["D_real"] + terms["D_fake"])).backward()
        self.optimiser.step()
        return terms


def train_upscaler(config: UpscalerConfig, out_dir: Path, data_root: Path | None = None, resume: bool = False,
                   max_minutes: float | None = None, log_every: int = 25, generator: str | None = None,
                   perceptual_features: objectives.FeatureNetwork | None = None) -> FaceUpscaler:
    """Train, checkpointing to OUT/checkpoint.pt, and export OUT/upscaler/ (from_pretrained folder).
    ``generator``: whose faces the "generated" inputs are (default: weights/);
    ``perceptual_features``: replaces darknet-tiny (tests)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    checkpoint_path = out_dir / "checkpoint.pt"
    torch.manual_seed(config.seed)
    model = FaceUpscaler(channels=config.channels, blocks=config.blocks)
    optimiser = torch.optim.Adam(model.parameters(), lr=config.lr)
    losses = UpscalerLosses(config, perceptual_features)
    rng, next_batch, described = training_pairs(config, out_dir, data_root, generator)
    step, spent_s = 0, 0.0
    if resume and checkpoint_path.exists():
        state = torch.load(checkpoint_path, map_location="cpu", weights_only=False)
        if state["config"] != asdict(config):
            raise SystemExit(f"--resume: {checkpoint_path} was trained with another configuration: {state['config']}")
        model.load_state_dict(state["model"])
        optimiser.load_state_dict(state["optimiser"])
        if losses.discriminator is not None:
            losses.discriminator.load_state_dict(state["discriminator"])
            losses.optimiser.load_state_dict(state["discriminator_optimiser"])
        rng.bit_generator.state = state["rng"]
        step, spent_s = state["step"], state["spent_s"]
        print(f"resumed from {checkpoint_path} at step {step}")
    print(f"{described}, {count_parameters(model)} parameters, {config.steps} steps of {config.batch_size}")

    def save() -> None:
        state = {"config": asdict(config), "model": model.state_dict(), "optimiser": optimiser.state_dict(),
                 "rng": rng.bit_generator.state, "step": step, "spent_s": spent_s}
        if losses.discriminator is not None:
            state |= {"discriminator": losses.discriminator.state_dict(), "discriminator_optimiser": losses.optimiser.state_dict()}
        save_atomically(state, checkpoint_path)

    model.train()
    started = time.perf_counter() - spent_s
    with (out_dir / "log.jsonl").open("a") as log:
        while step < config.steps:
            if max_minutes is not None and time.perf_counter() - started > max_minutes * 60:
                print(f"stopped by --max-minutes at step {step}")
                break
            for group in optimiser.param_groups + (losses.optimiser.param_groups if losses.discriminator else []):
                group["lr"] = learning_rate(config, step)
            inputs, targets = next_batch()
            upscaled = model(inputs)
            terms = losses.generator_terms(upscaled, targets)
            optimiser.zero_grad(set_to_none=True)
            losses.weighted(terms).backward()
            optimiser.step()
            terms |= losses.update_discriminator(upscaled, targets)
            step += 1
            spent_s = time.perf_counter() - started
            if step % log_every == 0 or step == config.steps:
                record = {"step": step, "seconds": round(spent_s, 1), "lr": optimiser.param_groups[0]["lr"],
                          **{name: round(value.item(), 5) for name, value in terms.items()}}
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
               **described, "parameters": count_parameters(model)}
    (out_dir / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    (export_dir / "README.md").write_text(model_card(summary, out_dir))
    print(f"exported {export_dir}")
    return model


def train_command(config: UpscalerConfig, out_dir: Path, generator: str | None = None) -> str:
    """The CLI call that reproduces a run: only the settings that differ from the defaults."""
    defaults = asdict(UpscalerConfig())
    flags = [f"--out {out_dir.as_posix()}"] + [f"--{name.replace('_', '-')} {value}" for name, value in asdict(config).items()
                                                if value != defaults[name]]
    if config.inputs == "generated" and generator not in (None, "weights/"):
        flags.append(f"--generator {generator}")
    return "python -m sketch2face.training.train_upscaler " + " ".join(flags)


def loss_text(config: UpscalerConfig) -> str:
    terms = [(f"{config.lambda_l1:g} L1", config.lambda_l1), (f"{config.lambda_perceptual:g} perceptual (darknet-tiny)", config.lambda_perceptual),
             (f"{config.lambda_gan:g} adversarial (least-squares PatchGAN, ndf {config.ndf})", config.lambda_gan)]
    return "loss " + " + ".join(text for text, weight in terms if weight > 0)


def data_text(summary: dict, config: UpscalerConfig) -> str:
    if config.inputs == "generated":
        return (f"Data: the generator's ({summary['generator']}) 256x320 faces for {summary['faces']} synthetic sketches "
                f"({config.draws} a photo, mostly mouse doodles) of {summary['photos']} photos of {summary['people']} people "
                f"({', '.join(summary['folders'])}; Face Research Lab, CC BY 4.0 / educational use; every "
                f"{generated_pairs.VALIDATION_EVERY}th person kept out for selection), each against its true photo at "
                f"512x640 in the same framing; {config.patch_size}x{config.patch_size} crops of the photo."
                + (f" The target keeps the generated face's own colours and shading below a Gaussian sigma of "
                   f"{config.low_pass_sigma:g} px and takes only the detail above it from the photo; the discriminator "
                   f"sees only that detail." if config.low_pass_sigma > 0 else ""))
    return (f"Data: {summary['photos']} photos ({', '.join(summary['folders'])}; Face Research Lab, CC BY 4.0 /\n"
            f"  educational use) at their own resolution or shrunk (x{config.min_photo_scale:g}-1), never enlarged. Each pair\n"
            f"  is a {config.patch_size}x{config.patch_size} patch and the same patch shrunk to half by area averaging, then\n"
            f"  spoilt like a generated face: blur (sigma up to {config.max_blur_sigma:g} px), a faint period-2/4/8 checkerboard,\n"
            f"  JPEG and noise. No sketches and no generator outputs were used.")


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
256x320 face to 512x640, so that a drawing on the 512x640 Sketchpad comes back at least at its own size.

## Model
- `sketch2face.networks.FaceUpscaler(channels={config.channels}, blocks={config.blocks})`: a bilinear x2 of the image
  plus a correction painted at the input size ({config.blocks} residual blocks of {config.channels} channels) and
  spread to the four sub-pixels by a pixel shuffle; {summary['parameters']:,} parameters, fp32 safetensors.
- Images in [-1, 1], RGB, any size; the output is twice the height and width.

## Training
- {summary['steps_done']} steps of batch {config.batch_size}, Adam lr {config.lr:g} with cosine decay, {loss_text(config)},
  {summary['seconds'] / 60:.0f} min on {summary['machine']}.
  `{train_command(config, out_dir, summary.get('generator'))}`
- {data_text(summary, config)}
- Never used: faces/canada (held out: it is what `sketch2face.training.evaluate_upscaler` judges on),
  CUFS test, and the eval doodles and edge maps.

## Limits
- It sharpens what the generator painted; it cannot add a likeness or features that are not there.
- How it was chosen, and what it measures against bicubic resizing: `docs/upscaler.md` in the sketch2face
  repository.
- Trained on young adults' frontal photos; other content is upscaled less well.{generated_limits(config)}
"""


def generated_limits(config: UpscalerConfig) -> str:
    if config.inputs != "generated" or config.low_pass_sigma > 0:
        return ""
    return ("\n- It learned the photos' colours too: it pulls a face's background and skin towards those of the London and"
            "\n  3DSK photos (grey-white backgrounds), which can change a face's colouring, not only its sharpness.")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=Path("runs/upscaler"))
    parser.add_argument("--data-root", type=Path, default=None, help="default: $SKETCH2FACE_DATA or ../shared/data")
    parser.add_argument("--resume", action="store_true", help="continue from OUT/checkpoint.pt if it exists")
    parser.add_argument("--max-minutes", type=float, default=None, help="stop (and export) after this long")
    parser.add_argument("--generator", default=None, help="--inputs generated: whose faces (default: weights/)")
    for name, value in asdict(UpscalerConfig()).items():
        parser.add_argument(f"--{name.replace('_', '-')}", type=type(value), default=value)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    config = UpscalerConfig(**{name: getattr(args, name) for name in asdict(UpscalerConfig())})
    train_upscaler(config, args.out, args.data_root, resume=args.resume, max_minutes=args.max_minutes,
                   generator=args.generator)


if __name__ == "__main__":
    main()
