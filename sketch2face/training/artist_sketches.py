"""Artist-style sketches of photos that have none, drawn by a network that learned CUFS's artists.

The identity term memorises the 88 CUFS train people: they are the only faces the generator sees
in the artists' style. A *sketcher*, a U-Net trained the other way round (CUFS train photo ->
its artist sketch, with an L1 and a PatchGAN term, pix2pix's objective), draws that style for the
~300 other training photos, so ``train --artist-sketches FILE`` can ask for their identity from a
sketch in the benchmark's style too.

Photos are colour-jittered and sometimes made grey while it trains: CUFS's photos share one studio
light and backdrop, and the sketcher must draw the London and 3DSK photos, which do not. CUFS test,
faces/canada and eval/ are never read (``data.build_training_records`` refuses them).

    python -m sketch2face.training.artist_sketches train --out runs/sketcher --max-minutes 30
    python -m sketch2face.training.artist_sketches train --out runs/sketcher --max-minutes 30 --resume  # after a stop
    python -m sketch2face.training.artist_sketches draw --sketcher runs/sketcher --out runs/sketcher/artist_sketches.npz
"""

from __future__ import annotations

import argparse
import json
import logging
import time
from pathlib import Path

import cv2
import numpy as np
import torch
import torch.nn.functional as F

from . import data
from .checkpoints import save_atomically
from .objectives import adversarial_loss
from ..networks import PatchDiscriminator, UNetGenerator, init_weights
from ..tensors import image_to_tensor

logger = logging.getLogger(__name__)

LAMBDA_L1 = 100.0  # pix2pix's weight: the sketch's layout must follow the photo's, the GAN adds the strokes


def jitter_colours(photo: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Brightness, contrast, saturation and a hue turn, or now and then grey: other photos' light."""
    if rng.random() < 0.2:
        image = np.repeat(cv2.cvtColor(photo, cv2.COLOR_RGB2GRAY)[..., None], 3, axis=2).astype(np.float32)
    else:
        hsv = cv2.cvtColor(photo, cv2.COLOR_RGB2HSV).astype(np.float32)
        hsv[..., 0] = (hsv[..., 0] + rng.uniform(-10, 10)) % 180
        hsv[..., 1] *= rng.uniform(0.6, 1.4)
        image = cv2.cvtColor(np.clip(hsv, 0, 255).astype(np.uint8), cv2.COLOR_HSV2RGB).astype(np.float32)
    mean = image.mean()
    image = (image - mean) * rng.uniform(0.75, 1.3) + mean + rng.uniform(-25, 25)
    return np.clip(image, 0, 255).astype(np.uint8)


def training_pair(record: data.FaceRecord, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """(photo uint8 RGB, sketch float32) of one CUFS pair, moved together by a flip, a small turn,
    scale and shift, the photo's colours jittered."""
    height, width = record.sketch.shape
    matrix = cv2.getRotationMatrix2D((width / 2, height / 2), rng.uniform(-5, 5), rng.uniform(0.9, 1.1))
    matrix[:, 2] += rng.uniform(-8, 8, size=2)
    if rng.random() < 0.5:
        matrix = matrix @ np.array([[-1.0, 0.0, width - 1.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]])
    photo = cv2.warpAffine(record.photo, matrix, (width, height), borderMode=cv2.BORDER_REPLICATE)
    sketch = cv2.warpAffine(record.sketch, matrix, (width, height), borderMode=cv2.BORDER_REPLICATE)
    return jitter_colours(photo, rng), sketch


def build_sketcher(ngf: int = 32) -> UNetGenerator:
    return UNetGenerator(in_channels=3, out_channels=1, ngf=ngf, upsample="resize")


def train_sketcher(out_dir: Path, data_root: Path | None = None, max_minutes: float = 30.0, steps: int = 100_000,
                   batch_size: int = 8, seed: int = 0, ngf: int = 32, limit: int | None = None,
                   resume: bool = False, checkpoint_every: int = 100) -> Path:
    """Trains until ``steps`` or ``max_minutes``, whichever comes first; writes the sketcher (config.json +
    model.safetensors), log.jsonl and checkpoint.pt into ``out_dir``. The learning rate falls linearly
    to 0 over the time budget. ``resume`` carries on from ``out_dir/checkpoint.pt`` with the time
    already spent counted against the budget, so a stopped run and its resume make one schedule."""
    out_dir.mkdir(parents=True, exist_ok=True)
    checkpoint_path = out_dir / "checkpoint.pt"
    settings = {"max_minutes": max_minutes, "batch_size": batch_size, "seed": seed, "ngf": ngf, "limit": limit}
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    records = data.load_cufs("train", data_root, limit=limit)
    sketcher, critic = build_sketcher(ngf), PatchDiscriminator(sketch_channels=3, photo_channels=1, ndf=32)
    sketcher.apply(init_weights)
    critic.apply(init_weights)
    optimise_g = torch.optim.Adam(sketcher.parameters(), lr=2e-4, betas=(0.5, 0.999))
    optimise_d = torch.optim.Adam(critic.parameters(), lr=2e-4, betas=(0.5, 0.999))
    step, spent_s = 0, 0.0
    resuming = resume and checkpoint_path.exists()
    if resuming:
        state = torch.load(checkpoint_path, map_location="cpu", weights_only=False)
        if state["settings"] != settings:
            raise SystemExit(f"--resume: {checkpoint_path} was trained with other settings ({state['settings']}), "
                             f"not {settings}; the learning rate follows --max-minutes, so it must match too")
        sketcher.load_state_dict(state["sketcher"])
        critic.load_state_dict(state["critic"])
        optimise_g.load_state_dict(state["optimise_g"])
        optimise_d.load_state_dict(state["optimise_d"])
        rng.bit_generator.state = state["rng"]
        torch.set_rng_state(state["torch_rng"])
        step, spent_s = state["step"], state["spent_s"]
        logger.info("resumed from %s at step %d, %.0f s spent", checkpoint_path, step, spent_s)

    def save_checkpoint() -> None:
        save_atomically({"settings": settings, "sketcher": sketcher.state_dict(), "critic": critic.state_dict(),
                         "optimise_g": optimise_g.state_dict(), "optimise_d": optimise_d.state_dict(),
                         "rng": rng.bit_generator.state, "torch_rng": torch.get_rng_state(),
                         "step": step, "spent_s": spent_s}, checkpoint_path)

    budget_s, started = max_minutes * 60.0, time.monotonic() - spent_s
    log = (out_dir / "log.jsonl").open("a" if resuming else "w")
    while step < steps and (spent_s := time.monotonic() - started) < budget_s:
        for optimiser in (optimise_g, optimise_d):
            for group in optimiser.param_groups:
                group["lr"] = 2e-4 * max(0.0, 1.0 - spent_s / budget_s)
        pairs = [training_pair(records[i], rng) for i in rng.integers(0, len(records), batch_size)]
        photo = torch.stack([image_to_tensor(p) for p, _ in pairs])
        sketch = torch.stack([image_to_tensor(s) for _, s in pairs])
        drawn = sketcher(photo)

        # D: real pairs towards 1, drawn ones towards 0 (least squares).
        real_logits, fake_logits = critic(photo, sketch), critic(photo, drawn.detach())
        loss_d = {"D_real": adversarial_loss(real_logits, True, "lsgan"),
                  "D_fake": adversarial_loss(fake_logits, False, "lsgan")}
        optimise_d.zero_grad()
        (0.5 * (loss_d["D_real"] + loss_d["D_fake"])).backward()
        optimise_d.step()

        # G: fool D, and stay near the artist's sketch.
        loss_g = {"G_GAN": adversarial_loss(critic(photo, drawn), True, "lsgan", for_discriminator=False),
                  "G_L1": F.l1_loss(drawn, sketch)}
        optimise_g.zero_grad()
        (loss_g["G_GAN"] + LAMBDA_L1 * loss_g["G_L1"]).backward()
        optimise_g.step()

        step += 1
        if step % 10 == 0 or step == 1:
            entry = {"step": step, "seconds": round(time.monotonic() - started, 1),
                     **{name: round(value.item(), 5) for name, value in {**loss_g, **loss_d}.items()}}
            log.write(json.dumps(entry) + "\n")
            log.flush()
            logger.info("%s", entry)
        if step % checkpoint_every == 0:
            spent_s = time.monotonic() - started
            save_checkpoint()
    spent_s = time.monotonic() - started
    save_checkpoint()
    log.close()
    sketcher.eval().save_pretrained(out_dir)
    (out_dir / "summary.json").write_text(json.dumps({"steps": step, "seconds": round(spent_s, 1),
                                                      "batch_size": batch_size, "seed": seed, "ngf": ngf}, indent=1))
    return out_dir


def draw(sketcher: UNetGenerator, photos: list[np.ndarray], batch_size: int = 8) -> list[np.ndarray]:
    """Canvas photos (uint8 RGB) -> artist-style sketches (float32, 1 = paper), same framing."""
    sketches = []
    sketcher.eval()
    with torch.inference_mode():
        for start in range(0, len(photos), batch_size):
            batch = torch.stack([image_to_tensor(photo) for photo in photos[start:start + batch_size]])
            drawn = (sketcher(batch)[:, 0].clamp(-1, 1) + 1.0) / 2.0
            sketches += [np.ascontiguousarray(each, dtype=np.float32) for each in drawn.numpy()]
    return sketches


def draw_for_training_photos(sketcher_dir: Path, out_file: Path, data_root: Path | None = None,
                             landmarks_file: Path | None = None) -> int:
    """Sketches every training photo without an artist sketch; saves {record name: sketch} as .npz.
    Returns how many."""
    sketcher = UNetGenerator.from_pretrained(str(sketcher_dir))
    records = [record for record in data.build_training_records(data_root, landmarks_file=landmarks_file)
               if record.sketch is None]
    sketches = draw(sketcher, [record.photo for record in records])
    out_file.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(out_file, **{record.name: (sketch * 255).round().astype(np.uint8)
                                     for record, sketch in zip(records, sketches)})
    return len(records)


def load(path: Path) -> dict[str, np.ndarray]:
    """{record name: float32 sketch} from :func:`draw_for_training_photos`'s file."""
    with np.load(path) as saved:
        return {name: saved[name].astype(np.float32) / 255.0 for name in saved.files}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    learn = commands.add_parser("train", help="train the sketcher on the CUFS train pairs")
    learn.add_argument("--out", type=Path, required=True)
    learn.add_argument("--data-root", type=Path, default=None)
    learn.add_argument("--max-minutes", type=float, default=30.0)
    learn.add_argument("--steps", type=int, default=100_000)
    learn.add_argument("--seed", type=int, default=0)
    learn.add_argument("--resume", action="store_true", help="continue from OUT/checkpoint.pt if it exists")
    learn.add_argument("--checkpoint-every", type=int, default=100, help="steps between checkpoints")
    sketch = commands.add_parser("draw", help="sketch every training photo that has no artist sketch")
    sketch.add_argument("--sketcher", type=Path, required=True)
    sketch.add_argument("--out", type=Path, required=True)
    sketch.add_argument("--data-root", type=Path, default=None)
    sketch.add_argument("--landmarks-file", type=Path, default=None)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    if args.command == "train":
        train_sketcher(args.out, args.data_root, args.max_minutes, args.steps, seed=args.seed, resume=args.resume,
                       checkpoint_every=args.checkpoint_every)
    else:
        count = draw_for_training_photos(args.sketcher, args.out, args.data_root, args.landmarks_file)
        print(f"{count} sketches -> {args.out}")


if __name__ == "__main__":
    main()
