"""The training configuration, apart from the train loop so that export can read its defaults
without importing the loop (and accelerate)."""

from __future__ import annotations

from dataclasses import dataclass

from . import data
from ..networks import UNetGenerator


@dataclass
class TrainConfig:
    ngf: int = 32
    ndf: int = 32
    num_downs: int = 6
    upsample: str = "resize"  # resize + 3x3 conv: no checkerboard (networks.UNetGenerator)
    output_scale: int = 2  # the refiner paints 512x640 from the 256x320 canvas
    num_scales: int = 2  # discriminator scales: full size for texture, half size for the face's layout
    gan_mode: str = "lsgan"  # least squares: steadier gradients than cross-entropy (pix2pixHD)
    batch_size: int = 8
    epochs: int = 80
    decay_from_epoch: int = 40  # learning rate decays linearly to 0 after this epoch
    lr: float = 2e-4
    beta1: float = 0.5
    # Loss weights. Unweighted, at the first step of the --quick smoke run on the real data: L1 0.52,
    # feature matching 0.31, LSGAN G 1.0. pix2pix's L1 weight of 100 makes that 52 against ~1 for
    # every other term, and stage 4 painted a smeared mean face; at 20 (~10 at the start) L1 still
    # anchors colours and layout (SSIM) while the feature terms (~3, and ~10 for the perceptual term,
    # normalised to start near 1) decide the texture.
    lambda_gan: float = 1.0
    lambda_l1: float = 20.0
    lambda_feat: float = 10.0  # pix2pixHD's weight for discriminator feature matching
    lambda_perceptual: float = 10.0  # pix2pixHD's VGG weight; objectives.perceptual_loss starts near 1 (per-layer normalised)
    # Identity, 1 - SFace cosine: ~0.47 for stage 4's outputs on CUFS train (../shared/models/README.md),
    # so ~2.4 weighted. Half the 10 whose 88-person probe memorised its people; here ~400 people, augmented.
    lambda_identity: float = 5.0
    # > 0: G_identity compares both faces blurred by this sigma (output pixels). The transposed
    # decoder's grid has periods 2, 4 and 8 px; sigma 1.5 keeps under 1% of a period-2 or -4
    # checkerboard and a fifth of period 8, so the recogniser's gradient can't ask for that grid.
    # (At 1.5 a fine-tune's grid still grew as fast: it comes from moving the network at all.)
    identity_blur_sigma: float = 0.0
    # True: the last transposed convolution stays phase-balanced (upsampling.balance_output_phases,
    # after every G step): flat features paint a flat image, however a fine-tune moves the rest.
    balance_output_phases: bool = False
    # True: only the encoder trains; the decoder (and the image layer) keeps its weights and its
    # BatchNorm statistics, in eval mode as it serves. Every fine-tune that moved the decoder grew
    # its grid; the encoder alone still grew it on doodles (docs/training.md, run E).
    freeze_decoder: bool = False
    # True: the mirror image, only the decoder and the image layer train, on features of an encoder
    # kept as it is (a soup's, say), so the decoder learns to paint what that encoder says. Run H
    # (docs/training.md): on soup C it painted the soup's stacked eyebrows more clearly, not once.
    freeze_encoder: bool = False
    identity_on_doodles: bool = True  # False: G_identity skips mouse doodles (data.SketchPhotoDataset)
    # > 0: G_teacher, an L1 toward the starting generator's output (--init-from, kept frozen) on
    # mouse doodles only, so that a fine-tune for the artist sketches keeps what the start did there.
    lambda_teacher: float = 0.0
    # > 0: G_shift, an L1 between the face and the face of the sketch rolled by one of the shifts
    # serving averages over (fastpath), rolled back, with the same dropout: it sees the decoder's grid.
    lambda_shift: float = 0.0
    # False: the pixel terms (G_L1, G_L1_face) skip mouse doodles. Their lines are warped against the
    # photo, so a pixel loss there asks for the average of every face the lines could mean: a blur.
    l1_on_doodles: bool = True
    # > 0: G_L1_layout, the L1 on mouse doodles between the face and the photo averaged over
    # layout_pool x layout_pool blocks, in place of the pixel terms (needs l1_on_doodles False): lines
    # warped 2-10 px still agree with the photo at that scale. Most of it is colouring a doodle does
    # not say, so training hardly lowers it (run N, docs/training.md).
    lambda_layout: float = 0.0
    layout_pool: int = 8
    # "color,translation,cutout" (augment.POLICIES): D sees every pair, real and generated, through the
    # same random differentiable transforms, so with ~400 faces it cannot memorise the photos.
    discriminator_augment: str = ""
    discriminator_warmup_steps: int = 0  # D updates alone before G's first, for a fine-tune whose D starts afresh
    lambda_face: float = 0.0  # extra L1 on the inner face (landmark hull); 0 = plain pix2pix
    seed: int = 0
    record_limit: int | None = None  # per source; None = all training photos
    with_landmarks: bool = True
    artist_weight: float = data.CUFS_STYLE_WEIGHTS["artist"]  # how often a CUFS pair keeps its artist sketch
    cufs_repeats: int = 1  # CUFS pairs per epoch, relative to the other photos
    # "doodle=0.7,edges=0.3": only these styles, for every photo (data.parse_style_mix), in place of
    # the default mixes and artist_weight. A generator for one kind of drawing (the pipeline routes).
    style_mix: str | None = None
    # A file of artist-style sketches of the non-CUFS training photos (artist_sketches.py), and how
    # often such a photo is shown as its sketch: more people in the benchmark's style than CUFS's 88.
    artist_sketches: str | None = None
    learned_sketch_weight: float = 0.5
    # > 0: each artist pair bent by one smooth random field (at most this many canvas px), the same
    # for sketch and photo: face shapes none of the 88 CUFS people has (data.warp_pair), against
    # the identity terms memorising those 88.
    pair_warp_px: float = 0.0
    # How the photo is resampled into each sample's frame (data.PHOTO_RESAMPLING): "linear" blurs
    # it by up to a half-pixel shift's [0.5, 0.5]; "cubic" keeps the photo's detail for the target.
    photo_resample: str = "linear"
    cufs_validation_every: int = 0  # keep every Nth CUFS train pair out, for `evaluate --select --validation-every N`
    checkpoint_every: int = 200  # steps
    log_every: int = 10

    @classmethod
    def quick(cls) -> "TrainConfig":
        """A few real steps on a handful of records: for tests and smoke runs."""
        return cls(ngf=8, ndf=8, batch_size=2, epochs=2, decay_from_epoch=1, record_limit=2, checkpoint_every=2, log_every=1)


GENERATOR_SHAPE = ("ngf", "num_downs", "upsample", "output_scale")  # what must match to load a generator's weights

# What a config saved before a field existed meant: the pix2pix of stages 1-7 (weights/).
PRE_V2_DEFAULTS = {"upsample": "transposed", "output_scale": 1, "num_scales": 1, "gan_mode": "vanilla",
                   "lambda_gan": 1.0, "lambda_l1": 100.0, "lambda_feat": 0.0, "lambda_perceptual": 0.0,
                   "lambda_identity": 0.0}


def saved_config(config: dict) -> dict:
    """A checkpoint's config with the fields it predates filled in as they were then."""
    return {**PRE_V2_DEFAULTS, **config}


def generator_from_config(config: dict) -> UNetGenerator:
    config = saved_config(config)
    return UNetGenerator(ngf=config["ngf"], num_downs=config["num_downs"], upsample=config["upsample"],
                         output_scale=config["output_scale"])
