"""Train the pix2pix sketch-to-face model.

    python -m sketch2face.training.train --out runs/main              # the full configuration
    python -m sketch2face.training.train --out runs/main --resume     # carry on from the last checkpoint
    python -m sketch2face.training.train --out runs/tune --init-from runs/main/checkpoint.pt ...  # fine-tune
    python -m sketch2face.training.train --quick --out /tmp/smoke     # seconds: the smoke test config
    accelerate launch -m sketch2face.training.train --device cuda ... # one or many GPUs

The objective is pix2pix's, G* = arg min_G max_D  L_cGAN(G, D) + lambda_L1 * L_L1(G), with more
named terms, each weighted in TrainConfig and logged at every step (objectives.py):

    G = lambda_gan * G_GAN + lambda_l1 * G_L1 + lambda_feat * G_feat
        + lambda_perceptual * G_perceptual + lambda_identity * G_identity (+ lambda_face * G_L1_face)
        (+ lambda_teacher * G_teacher) (+ lambda_shift * G_shift) (+ lambda_layout * G_L1_layout)
    D = 0.5 * (D_real + D_fake)

G_feat matches the discriminator's features of the generated and the true photo; G_perceptual
compares darknet-tiny's features (sketch2face.training.darknet); G_identity is 1 - cosine of the
SFace embeddings (sketch2face.training.sface) of the generated and the true photo, aligned by the
five face points that each training sample carries; G_L1_face is an extra L1 on the inner face;
G_teacher is an L1 toward the --init-from generator's own output, on mouse doodles only;
G_shift is an L1 between the face and the face of the sketch moved by a few pixels and moved back;
G_L1_layout is an L1 on mouse doodles between 8x8 block means (--layout-pool), where lines warped
against the photo still agree with it.
``--l1-on-doodles false`` leaves mouse doodles out of both pixel terms, ``--identity-on-doodles
false`` out of G_identity. ``--balance-output-phases true`` keeps the image-painting transposed
kernel phase-balanced (training/upsampling.py), a constraint rather than a term.
The two frozen networks are built only when their weight is above 0.
"""

from __future__ import annotations

import argparse
import copy
import itertools
import json
import math
import time
import typing
from dataclasses import asdict, fields, replace
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from accelerate import Accelerator
from torch.utils.data import DataLoader
from tqdm.auto import tqdm

from . import augment, data, objectives
from .checkpoints import save_atomically
from .machine import machine_description
from .config import GENERATOR_SHAPE, PRE_V2_DEFAULTS, TrainConfig, generator_from_config, saved_config
from .upsampling import balance_output_phases, resize_generator_from
from ..fastpath import LINE_DRAWING_SHIFTS, SHADED_SKETCH_SHIFTS
from ..networks import MultiScalePatchDiscriminator, UNetGenerator, init_weights

# G_shift's shifts: the non-zero ones serving averages over.
SERVING_SHIFTS = tuple(sorted({shift for shift in SHADED_SKETCH_SHIFTS + LINE_DRAWING_SHIFTS if shift != (0, 0)}))


def load_perceptual_features(device: torch.device) -> objectives.FeatureNetwork:
    """darknet-tiny's feature maps (frozen), for G_perceptual."""
    def build():
        from .darknet import DarknetTiny
        return DarknetTiny.load()
    return frozen_loss_network(build, "the darknet-tiny port (sketch2face.training.darknet)", "--lambda-perceptual", device).features


def load_identity_embedder(device: torch.device) -> objectives.IdentityEmbedder:
    """SFace embeddings (frozen) of five-point-aligned faces, for G_identity."""
    def build():
        from .sface import SFace
        return SFace.load()
    return frozen_loss_network(build, "the SFace port (sketch2face.training.sface)", "--lambda-identity", device).identity_embedding


def frozen_loss_network(build, what: str, weight_flag: str, device: torch.device) -> torch.nn.Module:
    """A pretrained loss network in eval mode with no trainable parameters; a missing package or
    file stops training in one line that says how to train without the term."""
    try:
        network = build()
    except (ImportError, FileNotFoundError) as error:
        raise SystemExit(f"{weight_flag.lstrip('-').replace('-', '_')} > 0 needs {what}: {error}. "
                         f"Train without it with {weight_flag} 0") from None
    network = network.to(device).eval()
    for parameter in network.parameters():
        parameter.requires_grad_(False)
    return network


def pixel_l1(fake: torch.Tensor, photo: torch.Tensor, pixel_mask: torch.Tensor | None) -> torch.Tensor:
    """Mean absolute error, with the samples outside ``pixel_mask`` (N,) adding nothing. It stays
    divided by the whole batch, so every other sample weighs exactly what it weighs in a plain L1."""
    if pixel_mask is None:
        return F.l1_loss(fake, photo)
    per_sample = (fake - photo).abs().flatten(1).mean(1)
    return (per_sample * pixel_mask.to(per_sample.dtype)).sum() / fake.shape[0]


def layout_l1(fake: torch.Tensor, photo: torch.Tensor, doodle_mask: torch.Tensor | None, pool: int) -> torch.Tensor:
    """:func:`pixel_l1` between ``pool`` x ``pool`` block means, over the samples in ``doodle_mask``
    (N,) only; 0 without doodles."""
    if doodle_mask is None or not doodle_mask.any():
        return fake.new_zeros(())
    return pixel_l1(F.avg_pool2d(fake, pool, ceil_mode=True), F.avg_pool2d(photo, pool, ceil_mode=True), doodle_mask)


def face_l1(fake: torch.Tensor, photo: torch.Tensor, face_mask: torch.Tensor | None,
            pixel_mask: torch.Tensor | None = None) -> torch.Tensor:
    """Mean absolute error over the masked (inner face) pixels only, of the samples in
    ``pixel_mask`` (all when None); 0 where nothing is masked."""
    if face_mask is None:
        return fake.new_zeros(())
    if pixel_mask is not None:
        face_mask = face_mask * pixel_mask.to(face_mask.dtype).view(-1, 1, 1, 1)
    face_pixels = face_mask.sum() * fake.shape[1]
    return ((fake - photo).abs() * face_mask).sum() / face_pixels.clamp_min(1.0)


class Pix2PixTrainer:
    """The pix2pix updates, one D step then one G step per batch, as in the paper.

    ``perceptual_features`` (rgb -> feature maps) and ``identity_embedder`` ((rgb, five points)
    -> unit embeddings) replace darknet-tiny and SFace when given; otherwise those are loaded,
    and only when their loss weight is above 0."""

    def __init__(self, config: TrainConfig, accelerator: Accelerator,
                 perceptual_features: objectives.FeatureNetwork | None = None,
                 identity_embedder: objectives.IdentityEmbedder | None = None):
        if config.gan_mode not in objectives.GAN_MODES:
            raise SystemExit(f"--gan-mode {config.gan_mode}: choose one of {', '.join(objectives.GAN_MODES)}")
        if config.lambda_layout > 0 and config.l1_on_doodles:
            raise SystemExit("--lambda-layout replaces the pixel terms on doodles: add --l1-on-doodles false")
        if config.layout_pool < 1:
            raise SystemExit(f"--layout-pool {config.layout_pool}: give a block size of 1 pixel or more")
        try:
            self.augment_policy = augment.parse_policy(config.discriminator_augment)
        except ValueError as error:
            raise SystemExit(f"--discriminator-augment: {error}") from None
        if self.augment_policy and config.output_scale != 1:
            raise SystemExit("--discriminator-augment: only for output_scale 1 (sketch and face at one size)")
        self.config = config
        self.accelerator = accelerator
        try:
            self.generator = generator_from_config(asdict(config))
            self.discriminator = MultiScalePatchDiscriminator(config.num_scales, ndf=config.ndf)
        except ValueError as error:  # --upsample, --output-scale or --num-scales out of range
            raise SystemExit(f"train config: {error}") from None
        init_weights(self.generator)
        init_weights(self.discriminator)
        if config.balance_output_phases:
            try:
                balance_output_phases(self.generator)
            except ValueError as error:
                raise SystemExit(f"--balance-output-phases: {error}") from None
        betas = (config.beta1, 0.999)
        if config.freeze_decoder and config.freeze_encoder:
            raise SystemExit("--freeze-decoder and --freeze-encoder together would leave nothing to train")
        if config.freeze_decoder:
            if config.output_scale != 1:
                raise SystemExit("--freeze-decoder: only for output_scale 1 (the refiner would train alone)")
            self.generator.decoder.requires_grad_(False)
            self.generator.to_image.requires_grad_(False)
        if config.freeze_encoder:
            self.generator.encoder.requires_grad_(False)
        trained = [parameter for parameter in self.generator.parameters() if parameter.requires_grad]
        self.optimizer_g = torch.optim.Adam(trained, lr=config.lr, betas=betas)
        self.optimizer_d = torch.optim.Adam(self.discriminator.parameters(), lr=config.lr, betas=betas)
        # oneDNN runs these convolutions ~1.3x faster channels-last on CPU (2.0 vs 2.6 s a step here).
        self.memory_format = torch.channels_last if accelerator.device.type == "cpu" else torch.contiguous_format
        self.generator.to(memory_format=self.memory_format)
        self.discriminator.to(memory_format=self.memory_format)
        self.perceptual_features = None
        if config.lambda_perceptual > 0:
            self.perceptual_features = perceptual_features or load_perceptual_features(accelerator.device)
        self.identity_embedder = None
        if config.lambda_identity > 0:
            self.identity_embedder = identity_embedder or load_identity_embedder(accelerator.device)
        (self.generator, self.discriminator, self.optimizer_g, self.optimizer_d) = accelerator.prepare(
            self.generator, self.discriminator, self.optimizer_g, self.optimizer_d
        )
        self.teacher: UNetGenerator | None = None  # G_teacher's reference, set by keep_as_teacher
        self.step = 0
        self.epoch = 0
        self.warm_up_updates = 0  # discriminator_step calls, which do not advance step
        self._augment_key = [config.seed, 0, 0, 11]  # what the discriminator's augmentation draws from (_judge)

    def train_step(self, sketch: torch.Tensor, photo: torch.Tensor, face_mask: torch.Tensor | None = None,
                   five_points: torch.Tensor | None = None, identity_mask: torch.Tensor | None = None,
                   pixel_mask: torch.Tensor | None = None, doodle_mask: torch.Tensor | None = None) -> dict[str, float]:
        """One D update, then one G update. ``photo`` (and ``face_mask``) are at the generator's
        output size; ``five_points`` (N, 5, 2) are in the photo's pixels, used where ``identity_mask``;
        the pixel terms G_L1 and G_L1_face count the samples in ``pixel_mask`` (N,), all when None;
        G_teacher and G_L1_layout count those in ``doodle_mask`` (N,), none when None.
        Returns every weighted term by name."""
        config = self.config
        sketch = sketch.contiguous(memory_format=self.memory_format)
        photo = photo.contiguous(memory_format=self.memory_format)
        dropout_state = self._rng_state() if config.lambda_shift > 0 else None  # G_shift's second pass reuses it
        self._augment_key = [config.seed, self.step, 0, 11]
        fake = self.generator(sketch)
        if fake.shape != photo.shape:
            raise ValueError(f"the generator makes {tuple(fake.shape)} from this sketch but the photo is {tuple(photo.shape)}")

        real_features, loss_d_real, loss_d_fake = self._update_discriminator(sketch, photo, fake.detach())

        # Generator: fool D, look like the true photo to D's features, to an ImageNet network and to
        # a face recogniser, and stay close to it in L1, optionally the inner face above all (and,
        # for doodles, whose lines are warped against the photo, only in its coarse layout).
        self.optimizer_g.zero_grad(set_to_none=True)
        fake_features = self._judge(sketch, fake)
        zero = fake.new_zeros(())
        terms = {
            "G_GAN": config.lambda_gan * objectives.adversarial_loss(_logits(fake_features), True, config.gan_mode,
                                                                     for_discriminator=False),
            "G_L1": config.lambda_l1 * pixel_l1(fake, photo, pixel_mask),
            # The real side was computed before D's update, as in pix2pixHD; it is detached.
            "G_feat": config.lambda_feat * objectives.feature_matching_loss(fake_features, real_features)
                      if config.lambda_feat > 0 else zero,
            "G_perceptual": config.lambda_perceptual * objectives.perceptual_loss(fake, photo, self.perceptual_features)
                            if self.perceptual_features is not None else zero,
            "G_identity": zero,
            "G_L1_face": config.lambda_face * face_l1(fake, photo, face_mask, pixel_mask),
            "G_L1_layout": config.lambda_layout * layout_l1(fake, photo, doodle_mask, config.layout_pool)
                           if config.lambda_layout > 0 else zero,
            "G_teacher": config.lambda_teacher * self._teacher_l1(sketch, fake, doodle_mask)
                         if self.teacher is not None else zero,
            "G_shift": config.lambda_shift * self._shift_l1(sketch, fake, dropout_state)
                       if config.lambda_shift > 0 else zero,
        }
        if self.identity_embedder is not None and five_points is not None:
            if identity_mask is None:
                identity_mask = torch.ones(fake.shape[0], dtype=torch.bool, device=fake.device)
            terms["G_identity"] = config.lambda_identity * objectives.identity_loss(
                fake, photo, five_points, identity_mask, self.identity_embedder, config.identity_blur_sigma)
        self.accelerator.backward(sum(terms.values()))
        self.optimizer_g.step()
        self._keep_constraints()

        self.step += 1
        return {**{name: value.item() for name, value in terms.items()},
                "D_real": loss_d_real.item(), "D_fake": loss_d_fake.item()}

    def _teacher_l1(self, sketch: torch.Tensor, fake: torch.Tensor, doodle_mask: torch.Tensor | None) -> torch.Tensor:
        """Mean absolute difference from the teacher's face for the same doodle; 0 without doodles."""
        if doodle_mask is None or not doodle_mask.any():
            return fake.new_zeros(())
        with torch.no_grad():
            target = self.teacher(sketch[doodle_mask])
        return (fake[doodle_mask] - target).abs().mean()

    def _rng_state(self) -> tuple[torch.Tensor, torch.Tensor | None]:
        """The random state dropout draws from: the CPU's, and the GPU's when training on one."""
        device = self.accelerator.device
        return torch.get_rng_state(), torch.cuda.get_rng_state(device) if device.type == "cuda" else None

    def _shift_l1(self, sketch: torch.Tensor, fake: torch.Tensor,
                  dropout_state: tuple[torch.Tensor, torch.Tensor | None]) -> torch.Tensor:
        """G_shift for one of the non-zero shifts serving averages over, drawn from (seed, step), so a
        resumed run draws the same ones. The moved pass reuses the first pass's dropout draw
        (:meth:`_rng_state` before it; the dropout levels are so coarse that a few pixels leave the
        content on its mask), so the term measures the grid, not two dropout draws."""
        draw = np.random.default_rng([self.config.seed, self.step, 7]).integers(len(SERVING_SHIFTS))
        shift = SERVING_SHIFTS[int(draw)]
        cpu_state, gpu_state = dropout_state
        with torch.random.fork_rng(devices=[self.accelerator.device] if gpu_state is not None else []):
            torch.set_rng_state(cpu_state)
            if gpu_state is not None:
                torch.cuda.set_rng_state(gpu_state, self.accelerator.device)
            return objectives.shift_consistency_loss(self.generator, sketch, fake, shift)

    def _update_discriminator(self, sketch: torch.Tensor, photo: torch.Tensor, fake: torch.Tensor):
        """Real pairs -> real, generated pairs -> fake, halved to slow D relative to G. Returns D's
        features of the real pair (for G_feat) and the two terms."""
        config = self.config
        self.optimizer_d.zero_grad(set_to_none=True)
        real_features = self._judge(sketch, photo)
        loss_d_real = objectives.adversarial_loss(_logits(real_features), True, config.gan_mode)
        loss_d_fake = objectives.adversarial_loss(_logits(self._judge(sketch, fake)), False, config.gan_mode)
        self.accelerator.backward(0.5 * (loss_d_real + loss_d_fake))
        self.optimizer_d.step()
        return real_features, loss_d_real, loss_d_fake

    def _judge(self, sketch: torch.Tensor, image: torch.Tensor) -> list[list[torch.Tensor]]:
        """D's features of the pair, through --discriminator-augment's transforms when set. Within a
        step every pair gets the same draw, so G_feat compares a real and a generated face moved and
        cut alike. A training step draws from (seed, step), so a resumed run draws as it would have;
        a warm-up update, which does not advance the step, from (seed, its own count)."""
        if self.augment_policy:
            draw = torch.Generator().manual_seed(int(np.random.default_rng(self._augment_key).integers(2**62)))
            sketch, image = augment.augment_pair(sketch, image, self.augment_policy, draw)
        return self.discriminator(sketch, image)

    def discriminator_step(self, sketch: torch.Tensor, photo: torch.Tensor) -> dict[str, float]:
        """D's update alone, against the generator as it is (not updated): a fine-tune whose
        discriminator starts afresh warms it up first, so that G's first steps answer a D that
        already tells its faces from photos."""
        sketch = sketch.contiguous(memory_format=self.memory_format)
        photo = photo.contiguous(memory_format=self.memory_format)
        with torch.no_grad():
            fake = self.generator(sketch)
        self._augment_key = [self.config.seed, self.warm_up_updates, 1, 11]
        _, loss_d_real, loss_d_fake = self._update_discriminator(sketch, photo, fake)
        self.warm_up_updates += 1
        return {"D_real": loss_d_real.item(), "D_fake": loss_d_fake.item()}

    def set_learning_rate(self, epoch_progress: float) -> float:
        """Constant, then linear decay to zero (pix2pix's 'linear' policy)."""
        config = self.config
        decay_epochs = max(config.epochs - config.decay_from_epoch, 1)
        factor = 1.0 - max(0.0, epoch_progress - config.decay_from_epoch) / decay_epochs
        lr = config.lr * max(factor, 0.0)
        for optimizer in (self.optimizer_g, self.optimizer_d):
            for group in optimizer.param_groups:
                group["lr"] = lr
        return lr

    # -- checkpoints -----------------------------------------------------------------
    def save_checkpoint(self, path: Path) -> None:
        unwrap = self.accelerator.unwrap_model
        state = {
            "generator": unwrap(self.generator).state_dict(),
            "discriminator": unwrap(self.discriminator).state_dict(),
            "optimizer_g": self.optimizer_g.state_dict(),
            "optimizer_d": self.optimizer_d.state_dict(),
            "step": self.step,
            "epoch": self.epoch,
            "config": asdict(self.config),
        }
        if self.accelerator.is_main_process:
            save_atomically(state, path)

    def _load_networks(self, state: dict) -> None:
        self.accelerator.unwrap_model(self.generator).load_state_dict(state["generator"])
        self.accelerator.unwrap_model(self.discriminator).load_state_dict(state["discriminator"])
        self._keep_constraints()

    def load_checkpoint(self, path: Path) -> None:
        state = torch.load(path, map_location="cpu", weights_only=True)
        self._load_networks(state)
        self.optimizer_g.load_state_dict(state["optimizer_g"])
        self.optimizer_d.load_state_dict(state["optimizer_d"])
        self.step, self.epoch = state["step"], state["epoch"]

    def init_from(self, path: Path) -> None:
        """Start from another run's networks (fine-tuning): fresh optimisers, step 0.

        ``path`` is a checkpoint.pt (generator and discriminator), or an exported generator folder
        such as ``weights/`` (config.json + model.safetensors), whose fine-tune starts a fresh
        discriminator. A transposed-convolution generator starts a resize one by refitting its
        upsampling kernels (training/upsampling.py)."""
        if path.is_dir():
            saved = saved_config(json.loads((path / "config.json").read_text()))
            pretrained = UNetGenerator.from_pretrained(path, strict=True)
            if saved["upsample"] == "transposed" and self.config.upsample == "resize" and self.config.output_scale == 1:
                # Stage 4 and earlier: refit the upsampling kernels (training/upsampling.py).
                pretrained = resize_generator_from(pretrained)
                saved = {**saved, "upsample": "resize"}
            self._check_same_shape(path, saved, GENERATOR_SHAPE)
            self.accelerator.unwrap_model(self.generator).load_state_dict(pretrained.state_dict())
            self._keep_constraints()
        else:
            state = torch.load(path, map_location="cpu", weights_only=True)
            self._check_same_shape(path, state["config"], GENERATOR_SHAPE + ("ndf", "num_scales"))
            self._load_networks(state)

    def keep_as_teacher(self) -> None:
        """Freeze a copy of the generator as it is now (after init_from), in eval mode as it
        serves, as G_teacher's reference."""
        teacher = copy.deepcopy(self.accelerator.unwrap_model(self.generator))
        self.teacher = teacher.eval().requires_grad_(False)

    def train_mode(self) -> None:
        """Both networks in training mode, but a frozen half as it serves (eval: its BatchNorm
        statistics stay and its dropout is off)."""
        self.generator.train()
        self.discriminator.train()
        generator = self.accelerator.unwrap_model(self.generator)
        if self.config.freeze_decoder:
            generator.decoder.eval()
            generator.to_image.eval()
        if self.config.freeze_encoder:
            generator.encoder.eval()

    def _keep_constraints(self) -> None:
        """Project the generator back onto what the config asks of it (after a step or a load)."""
        if self.config.balance_output_phases:
            balance_output_phases(self.accelerator.unwrap_model(self.generator))

    def _check_same_shape(self, path: Path, saved: dict, names: tuple[str, ...]) -> None:
        saved = saved_config(saved)
        for name in names:
            if saved[name] != getattr(self.config, name):
                raise SystemExit(f"--init-from {path}: it has {name}={saved[name]}, this config has {getattr(self.config, name)}")

    def export_generator(self, directory: Path) -> None:
        """config.json + model.safetensors, loadable with UNetGenerator.from_pretrained."""
        generator = self.accelerator.unwrap_model(self.generator)
        if self.accelerator.is_main_process:
            generator.save_pretrained(directory)  # safetensors' save_model makes channels-last tensors contiguous




def _logits(features: list[list[torch.Tensor]]) -> list[torch.Tensor]:
    """Each discriminator scale's patch logits (the last of its features)."""
    return [scale[-1] for scale in features]


def train(config: TrainConfig, out_dir: Path, data_root: Path | None = None, resume: bool = False,
          device: str = "auto", max_minutes: float | None = None, init_from: Path | None = None,
          perceptual_features: objectives.FeatureNetwork | None = None,
          identity_embedder: objectives.IdentityEmbedder | None = None,
          landmarks_file: Path | None = None, workers: int = 0) -> dict:
    """Train (or resume, or fine-tune) and export the generator to OUT/generator. The two
    callables replace darknet-tiny and SFace (see Pix2PixTrainer). ``landmarks_file``: see
    data.build_training_records; ``workers``: data loader processes (drawing the sketches is
    the slow part once a GPU does the rest)."""
    if workers < 0:
        raise SystemExit(f"--workers {workers}: give 0 (the main process) or more loader processes")
    try:
        style_mix = data.parse_style_mix(config.style_mix) if config.style_mix else None
    except ValueError as error:
        raise SystemExit(f"--style-mix: {error}") from None
    checkpoint_path = out_dir / "checkpoint.pt"
    resuming = resume and checkpoint_path.exists()
    if config.lambda_teacher > 0 and init_from is None:
        raise SystemExit("--lambda-teacher: give --init-from, the generator whose doodle faces G_teacher keeps")
    starts_from_init = init_from is not None and (not resuming or config.lambda_teacher > 0)  # G_teacher needs it on --resume too
    if starts_from_init:
        check_init_source(init_from)  # before the minutes spent loading the data
    accelerator = Accelerator(cpu=device == "cpu")
    if device == "cuda" and accelerator.device.type != "cuda":
        raise SystemExit("--device cuda was asked for, but no CUDA device is available")
    torch.manual_seed(config.seed)
    out_dir.mkdir(parents=True, exist_ok=True)
    log_path = out_dir / "log.jsonl"

    trainer = Pix2PixTrainer(config, accelerator, perceptual_features, identity_embedder)  # before the data: fails fast
    records = data.build_training_records(data_root, limit=config.record_limit, with_landmarks=config.with_landmarks,
                                          output_scale=config.output_scale, cufs_validation_every=config.cufs_validation_every,
                                          landmarks_file=landmarks_file, learned_sketches=learned_sketches(config))
    dataset = data.SketchPhotoDataset(records, seed=config.seed, artist_weight=config.artist_weight,
                                      learned_sketch_weight=config.learned_sketch_weight,  # only photos with a learned sketch
                                      cufs_repeats=config.cufs_repeats, output_scale=config.output_scale,
                                      identity_on_doodles=config.identity_on_doodles, l1_on_doodles=config.l1_on_doodles,
                                      style_mix=style_mix, pair_warp_px=config.pair_warp_px,
                                      photo_resample=config.photo_resample)
    loader = DataLoader(dataset, batch_size=config.batch_size, shuffle=True, drop_last=True, num_workers=workers,
                        persistent_workers=workers > 0)
    loader = accelerator.prepare(loader)
    if starts_from_init:
        trainer.init_from(init_from)  # on --resume, the checkpoint then overrides it
        if config.lambda_teacher > 0:
            trainer.keep_as_teacher()
        if not resuming:
            accelerator.print(f"initialised the networks from {init_from}")
    if resuming:
        trainer.load_checkpoint(checkpoint_path)
        accelerator.print(f"resumed from {checkpoint_path} at epoch {trainer.epoch}, step {trainer.step}")
    provenance = {**asdict(config), "init_from": str(init_from) if init_from else None, "max_minutes": max_minutes}
    (out_dir / "train_config.json").write_text(json.dumps(provenance, indent=2))

    if trainer.step == 0 and config.discriminator_warmup_steps > 0:
        warm_up_discriminator(trainer, loader, config, log_path, accelerator)
    steps_per_epoch = len(loader)
    total_steps = steps_per_epoch * config.epochs
    started = time.monotonic()
    run_id = time.time()
    progress = tqdm(total=total_steps, initial=trainer.step, desc="train", disable=not accelerator.is_main_process)
    losses: dict[str, float] = {}
    stopped_early = False
    budget_s = max_minutes * 60 if max_minutes is not None else None
    earlier_s = _elapsed_in_earlier_runs(log_path) if resume and log_path.exists() else 0.0
    while trainer.epoch < config.epochs and not stopped_early:
        trainer.train_mode()
        for index, batch in enumerate(loader):
            progress_epochs = trainer.epoch + index / steps_per_epoch
            if budget_s is not None:
                spent_s = earlier_s + time.monotonic() - started
                progress_epochs = budgeted_progress(progress_epochs, spent_s, budget_s, config.epochs)
                if progress_epochs >= config.epochs:
                    stopped_early = True
                    break
            lr = trainer.set_learning_rate(progress_epochs)
            losses = trainer.train_step(batch["sketch"], batch["photo"], batch["face_mask"], batch["five_points"],
                                        batch["identity_mask"], batch["pixel_mask"], batch["doodle_mask"])
            progress.update(1)
            progress.set_postfix({name: f"{value:.3f}" for name, value in losses.items()})
            if trainer.step % config.log_every == 0 and accelerator.is_main_process:
                _append_log(log_path, {"step": trainer.step, "epoch": trainer.epoch, "lr": lr, **losses,
                                       "elapsed_s": round(time.monotonic() - started, 1), "run_started": run_id})
            if trainer.step % config.checkpoint_every == 0:
                trainer.save_checkpoint(checkpoint_path)
        else:
            trainer.epoch += 1
    progress.close()
    trainer.save_checkpoint(checkpoint_path)
    trainer.export_generator(out_dir / "generator")
    summary = {"steps": trainer.step, "epochs": trainer.epoch, "records": len(records),
               "seconds": round(time.monotonic() - started, 1), "stopped_early": stopped_early,
               "final_losses": losses, "device": str(accelerator.device),
               "machine": machine_description(accelerator.device.type),
               "init_from": str(init_from) if init_from else None}
    if accelerator.is_main_process:
        (out_dir / "summary.json").write_text(json.dumps(summary, indent=2))
    return summary


def learned_sketches(config: TrainConfig) -> dict[str, np.ndarray] | None:
    if not config.artist_sketches:
        return None
    from .artist_sketches import load

    path = Path(config.artist_sketches)
    if not path.is_file():
        raise SystemExit(f"--artist-sketches {path} does not exist: draw it with `python -m sketch2face.training.artist_sketches draw`")
    return load(path)


def warm_up_discriminator(trainer: Pix2PixTrainer, loader, config: TrainConfig, log_path: Path, accelerator) -> None:
    """``discriminator_warmup_steps`` D updates with G fixed, at the starting learning rate, before
    the first G update (and outside --max-minutes); logged with ``"warmup": true``."""
    trainer.train_mode()  # the same dropout and batch statistics as the steps that follow
    trainer.set_learning_rate(0.0)
    steps = config.discriminator_warmup_steps
    batches = (batch for _ in itertools.count() for batch in loader)  # as many epochs as it takes
    started = time.monotonic()
    for done, batch in enumerate(itertools.islice(batches, steps), start=1):
        losses = trainer.discriminator_step(batch["sketch"], batch["photo"])
        if (done % config.log_every == 0 or done == steps) and accelerator.is_main_process:
            _append_log(log_path, {"warmup": True, "warmup_step": done, **losses,
                                   "elapsed_s": round(time.monotonic() - started, 1)})


def _append_log(log_path: Path, entry: dict) -> None:
    with open(log_path, "a") as handle:
        handle.write(json.dumps(entry) + "\n")


def check_init_source(path: Path) -> None:
    """One clear line instead of a traceback when --init-from names nothing a fine-tune can use."""
    if path.is_dir():
        if not (path / "config.json").is_file() or not (path / "model.safetensors").is_file():
            raise SystemExit(f"--init-from {path}: a folder must hold an exported generator "
                             "(config.json + model.safetensors), e.g. weights/")
    elif not path.is_file():
        raise SystemExit(f"--init-from {path}: no such checkpoint file or generator folder")


def budgeted_progress(epoch_progress: float, spent_s: float, budget_s: float, epochs: int) -> float:
    """Where the LR schedule stands under a time budget: the further of the epochs done and the
    share of the budget spent (in epochs), so the decay still reaches zero in time. ``spent_s``
    includes the earlier runs of a resumed training, so a resume continues the schedule."""
    return max(epoch_progress, epochs * spent_s / budget_s)


def _elapsed_in_earlier_runs(log_path: Path) -> float:
    """Seconds spent by earlier (interrupted) runs, so --resume keeps the same time budget."""
    last_by_run: dict[float, float] = {}
    for line in log_path.read_text().splitlines():
        entry = json.loads(line)
        if entry.get("warmup"):
            continue  # the discriminator's warm-up is outside the budget
        last_by_run[entry.get("run_started", 0.0)] = entry["elapsed_s"]
    return sum(last_by_run.values())


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=Path("runs/main"), help="checkpoints, logs and the exported generator")
    parser.add_argument("--data-root", type=Path, default=None, help="default: $SKETCH2FACE_DATA or ../shared/data")
    parser.add_argument("--quick", action="store_true", help="tiny smoke configuration (seconds on a CPU)")
    parser.add_argument("--resume", action="store_true", help="continue from OUT/checkpoint.pt if it exists")
    parser.add_argument("--init-from", type=Path, default=None, help="fine-tune: start from a checkpoint.pt, or a generator folder (fresh discriminator)")
    parser.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto")
    parser.add_argument("--max-minutes", type=float, default=None, help="time budget: the LR schedule is compressed to finish within it")
    parser.add_argument("--landmarks-file", type=Path, default=None,
                        help="dlib's landmarks of the training photos: read from this JSON file if it exists (no dlib needed), "
                             "else found with dlib and written there")
    parser.add_argument("--workers", type=int, default=0, help="data loader processes (default 0: draw sketches in the main process)")
    parser.add_argument("--pix2pix-v1", action="store_true",
                        help="the objective and networks of the shipped stages 1-7 (transposed convs, 256x320, cGAN + 100 L1); "
                             "their recorded commands need it since the v2 defaults")
    for name, kind in config_flag_types().items():
        parser.add_argument(f"--{name.replace('_', '-')}", type=kind, default=None)
    return parser.parse_args(argv)


def parse_bool(text: str) -> bool:
    if text.lower() in ("1", "true", "yes"):
        return True
    if text.lower() in ("0", "false", "no"):
        return False
    raise argparse.ArgumentTypeError(f"expected true or false, got {text!r}")


def config_flag_types(config_class: type = TrainConfig) -> dict[str, typing.Callable[[str], object]]:
    """Each config field and the parser of its flag, from the real types (``int | None`` parses an int)."""
    parsers = {}
    for name, hint in typing.get_type_hints(config_class).items():
        kinds = [kind for kind in typing.get_args(hint) if kind is not type(None)] or [hint]
        if len(kinds) != 1 or kinds[0] not in (bool, int, float, str):
            raise TypeError(f"{config_class.__name__}.{name}: no command-line parser for {hint}")
        parsers[name] = parse_bool if kinds[0] is bool else kinds[0]
    return parsers


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    config = TrainConfig.quick() if args.quick else TrainConfig()
    if args.pix2pix_v1:
        config = replace(config, **PRE_V2_DEFAULTS)
    for field in fields(TrainConfig):
        value = getattr(args, field.name)
        if value is not None:
            setattr(config, field.name, value)
    summary = train(config, args.out, args.data_root, resume=args.resume, device=args.device,
                    max_minutes=args.max_minutes, init_from=args.init_from, landmarks_file=args.landmarks_file,
                    workers=args.workers)
    print(json.dumps(summary, indent=2))
    if math.isnan(summary["final_losses"].get("G_L1", 0.0)):
        raise SystemExit("training diverged (NaN loss)")


if __name__ == "__main__":
    main()
