"""The loss terms of the generator v2 objective, each a plain function of tensors.

The trainer (train.py) weights them by TrainConfig and logs each under its name:

- ``G_GAN`` / ``D_real`` / ``D_fake``: :func:`adversarial_loss`, averaged over the
  discriminator's scales;
- ``G_feat``: :func:`feature_matching_loss`, the discriminator's features of the generated photo
  against those of the true one (pix2pixHD, Wang et al. 2018);
- ``G_perceptual``: :func:`perceptual_loss` on the features of a frozen ImageNet network
  (darknet-tiny, ``sketch2face.training.darknet``);
- ``G_identity``: :func:`identity_loss`, 1 - cosine of face embeddings of the generated and the
  true photo (SFace, ``sketch2face.training.sface``), each aligned by the sample's five points,
  optionally both blurred first (:func:`gaussian_blur`);
- ``G_shift``: :func:`shift_consistency_loss`, the face against the face of the same sketch moved
  by a few pixels and moved back: what a transposed decoder paints on its own lattice does not move.

The frozen networks are passed in as callables, so any network with the same call signature
works (the tests use small random convolutional networks).
"""

from __future__ import annotations

import math
from typing import Callable, Sequence

import torch
import torch.nn.functional as F

from ..fastpath import roll_back
from ..networks import GANLoss

GAN_MODES = ("vanilla", "lsgan", "hinge")

FeatureNetwork = Callable[[torch.Tensor], Sequence[torch.Tensor]]  # rgb in [-1, 1] -> feature maps
IdentityEmbedder = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]  # (rgb, N x 5 x 2 points) -> N x D, unit rows

_vanilla = GANLoss()


def adversarial_loss(logits: torch.Tensor | Sequence[torch.Tensor], target_is_real: bool, mode: str,
                     for_discriminator: bool = True) -> torch.Tensor:
    """The GAN term for one patch-logit map, or the mean over a list of them (one per scale).

    vanilla: cross-entropy (pix2pix); lsgan: least squares to 1 / 0 (Mao et al. 2017, pix2pixHD);
    hinge: max(0, 1 -+ D) for the discriminator, -D for the generator (Lim & Ye 2017).
    """
    if mode not in GAN_MODES:
        raise ValueError(f"gan_mode must be one of {GAN_MODES}, not {mode!r}")
    if not isinstance(logits, torch.Tensor):
        return torch.stack([adversarial_loss(each, target_is_real, mode, for_discriminator) for each in logits]).mean()
    if mode == "vanilla":
        return _vanilla(logits, target_is_real)
    if mode == "lsgan":
        return F.mse_loss(logits, torch.full_like(logits, 1.0 if target_is_real else 0.0))
    if not for_discriminator:  # hinge, generator side
        if not target_is_real:
            raise ValueError("the hinge generator loss only pushes generated patches towards real")
        return -logits.mean()
    return F.relu(1.0 - logits).mean() if target_is_real else F.relu(1.0 + logits).mean()


def feature_matching_loss(fake_features: Sequence[Sequence[torch.Tensor]],
                          real_features: Sequence[Sequence[torch.Tensor]]) -> torch.Tensor:
    """Mean L1 between the discriminator's intermediate activations (logits excluded) of the
    generated and the true photo, averaged over layers and scales. The real side is detached:
    this term trains the generator only."""
    terms = [F.l1_loss(fake, real.detach())
             for fake_scale, real_scale in zip(fake_features, real_features, strict=True)
             for fake, real in zip(fake_scale[:-1], real_scale[:-1], strict=True)]
    return torch.stack(terms).mean()


def perceptual_loss(fake: torch.Tensor, photo: torch.Tensor, features: FeatureNetwork) -> torch.Tensor:
    """Mean over layers of the L1 distance of the two photos' features, each layer divided by the
    mean magnitude of the true photo's features there: the layers count alike whatever their
    scale, and the term starts near 1 whatever the network, so its weight reads directly."""
    with torch.no_grad():
        targets = [target.detach() for target in features(photo)]
    terms = [F.l1_loss(generated, target) / target.abs().mean().clamp_min(1e-6)
             for generated, target in zip(features(fake), targets, strict=True)]
    return torch.stack(terms).mean()


def gaussian_blur(images: torch.Tensor, sigma: float) -> torch.Tensor:
    """(N, C, H, W) blurred by a separable Gaussian of ``sigma`` pixels (edges reflected); the
    images themselves when ``sigma`` is 0. Its gradient is the same blur of the incoming one."""
    if sigma < 0:
        raise ValueError(f"a blur's sigma can't be negative, got {sigma}")
    if sigma == 0:
        return images
    radius = max(1, math.ceil(3 * sigma))
    offsets = torch.arange(-radius, radius + 1, dtype=images.dtype, device=images.device)
    kernel = torch.exp(-0.5 * (offsets / sigma) ** 2)
    kernel = kernel / kernel.sum()
    channels = images.shape[1]
    padded = F.pad(images, (radius, radius, radius, radius), mode="reflect")
    rows = F.conv2d(padded, kernel.view(1, 1, 1, -1).repeat(channels, 1, 1, 1), groups=channels)
    return F.conv2d(rows, kernel.view(1, 1, -1, 1).repeat(channels, 1, 1, 1), groups=channels)


def identity_loss(fake: torch.Tensor, photo: torch.Tensor, five_points: torch.Tensor, identity_mask: torch.Tensor,
                  embed: IdentityEmbedder, blur_sigma: float = 0.0) -> torch.Tensor:
    """1 - cosine similarity of the face embeddings of the generated and the true photo, both
    aligned by the sample's five points (eye centres, nose tip, mouth corners, in the photo's
    pixels), averaged over the samples in ``identity_mask``; 0 when there are none.

    ``blur_sigma`` > 0 blurs both photos first, so the recogniser's gradient carries no detail
    finer than the blur: it can't ask the generator for a pixel grid that only moves an embedding."""
    if identity_mask.shape != fake.shape[:1] or five_points.shape != (fake.shape[0], 5, 2):
        raise ValueError(f"expected five points (N, 5, 2) and a (N,) mask for N={fake.shape[0]}, "
                         f"got {tuple(five_points.shape)} and {tuple(identity_mask.shape)}")
    rows = identity_mask.nonzero().flatten()
    if rows.numel() == 0:
        return fake.new_zeros(())
    points = five_points[rows].to(fake.dtype)
    with torch.no_grad():
        target = embed(gaussian_blur(photo[rows], blur_sigma), points)
    generated = embed(gaussian_blur(fake[rows], blur_sigma), points)
    return (1.0 - F.cosine_similarity(generated, target.detach(), dim=1)).mean()


def shift_consistency_loss(generator: Callable[[torch.Tensor], torch.Tensor], sketch: torch.Tensor,
                           fake: torch.Tensor, shift: tuple[int, int]) -> torch.Tensor:
    """Mean absolute difference between ``fake`` (the generator's face for ``sketch``) and its face
    for the sketch rolled by ``shift`` = (dy, dx) pixels, rolled back. Zero for a shift-equivariant
    generator; a grid fixed to the stride lattice, or a face that changes with where the drawing
    sits, counts. Both passes train. Serving averages over such shifts (``fastpath.ShiftAveraged``),
    and the mean is sharper where they agree."""
    moved = generator(torch.roll(sketch, shift, dims=(2, 3)))
    return (roll_back(moved, shift, sketch) - fake).abs().mean()
