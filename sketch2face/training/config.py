"""The training configuration, apart from the train loop so that export can read its defaults
without importing the loop (and accelerate)."""

from __future__ import annotations

from dataclasses import dataclass

from . import data


@dataclass
class TrainConfig:
    ngf: int = 32
    ndf: int = 32
    num_downs: int = 6
    batch_size: int = 8
    epochs: int = 80
    decay_from_epoch: int = 40  # learning rate decays linearly to 0 after this epoch
    lr: float = 2e-4
    beta1: float = 0.5
    lambda_l1: float = 100.0
    lambda_face: float = 0.0  # extra L1 on the inner face (landmark hull); 0 = plain pix2pix
    seed: int = 0
    record_limit: int | None = None  # per source; None = all training photos
    with_landmarks: bool = True
    artist_weight: float = data.CUFS_STYLE_WEIGHTS["artist"]  # how often a CUFS pair keeps its artist sketch
    cufs_repeats: int = 1  # CUFS pairs per epoch, relative to the other photos
    checkpoint_every: int = 200  # steps
    log_every: int = 10

    @classmethod
    def quick(cls) -> "TrainConfig":
        """A few real steps on a handful of records: for tests and smoke runs."""
        return cls(ngf=8, ndf=8, batch_size=2, epochs=2, decay_from_epoch=1, record_limit=2, checkpoint_every=2, log_every=1)
