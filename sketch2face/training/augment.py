"""Differentiable augmentation of the discriminator's inputs (DiffAugment, Zhao et al. 2020).

With ~400 training faces a PatchGAN soon memorises the real photos, and its gradient then tells
the generator little about what makes a face look real. Showing D every pair, real and generated
alike, through the same kind of random transform keeps it from memorising, and because the
transforms are differentiable the generator's gradient still passes through them.

The pair is a sketch and an image: moves and cut-outs are applied to both with the same draw, so
D can still check that the image follows its sketch; colour changes touch the image only (the
sketch is grey paper). Tensors are in [-1, 1], (N, C, H, W)."""

from __future__ import annotations

import torch

POLICIES = ("color", "translation", "cutout")
TRANSLATION_FRACTION = 1 / 8  # of each side, as in the paper
CUTOUT_FRACTION = 1 / 2


def parse_policy(text: str | None) -> tuple[str, ...]:
    """"color,translation" -> ("color", "translation"); "" or None -> () (no augmentation)."""
    names = tuple(name.strip() for name in (text or "").split(",") if name.strip())
    unknown = [name for name in names if name not in POLICIES]
    if unknown:
        raise ValueError(f"unknown discriminator augmentation {', '.join(unknown)}: choose from {', '.join(POLICIES)}")
    return names


def augment_pair(sketch: torch.Tensor, image: torch.Tensor, policy: tuple[str, ...],
                 generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """The pair through ``policy``'s transforms, each sample with its own random draw from ``generator``
    (a CPU generator: the draws are a handful of numbers, moved to the images' device)."""
    for name in policy:
        if name == "color":
            image = _colour(image, generator)
        elif name == "translation":
            sketch, image = _translate(sketch, image, generator)
        elif name == "cutout":
            sketch, image = _cut_out(sketch, image, generator)
        else:
            raise ValueError(f"unknown discriminator augmentation {name!r}")
    return sketch, image


def _uniform(count: int, low: float, high: float, like: torch.Tensor, generator) -> torch.Tensor:
    draw = torch.rand(count, 1, 1, 1, generator=generator)
    return (low + (high - low) * draw).to(device=like.device, dtype=like.dtype)


def _colour(image: torch.Tensor, generator) -> torch.Tensor:
    """Brightness, saturation and contrast, each drawn per sample. Saturation x[0, 2] and contrast
    x[0.5, 1.5] as in DiffAugment; brightness +-1 on this [-1, 1] range is twice the shift the
    DiffAugment code adds to its own [-1, 1] images (run D trained with it; docs/training.md)."""
    count = image.shape[0]
    image = image + _uniform(count, -1.0, 1.0, image, generator)
    grey = image.mean(dim=1, keepdim=True)
    image = grey + (image - grey) * _uniform(count, 0.0, 2.0, image, generator)
    mean = image.mean(dim=(1, 2, 3), keepdim=True)
    return mean + (image - mean) * _uniform(count, 0.5, 1.5, image, generator)


def _translate(sketch: torch.Tensor, image: torch.Tensor, generator) -> tuple[torch.Tensor, torch.Tensor]:
    """Both moved by the same whole-pixel offset (up to 1/8 of each side); what comes in is blank:
    paper for the sketch, mid-grey for the image."""
    count, _, height, width = image.shape
    if sketch.shape[-2:] != image.shape[-2:]:
        raise ValueError("translation needs the sketch and the image at one size")
    max_dy, max_dx = int(height * TRANSLATION_FRACTION), int(width * TRANSLATION_FRACTION)
    dy = torch.randint(-max_dy, max_dy + 1, (count,), generator=generator).tolist()
    dx = torch.randint(-max_dx, max_dx + 1, (count,), generator=generator).tolist()
    moved = [(_shift(s, y, x, 1.0), _shift(i, y, x, 0.0)) for s, i, y, x in zip(sketch, image, dy, dx)]
    return torch.stack([s for s, _ in moved]), torch.stack([i for _, i in moved])


def _shift(tensor: torch.Tensor, dy: int, dx: int, blank: float) -> torch.Tensor:
    """(C, H, W) moved down by dy and right by dx, the uncovered border filled with ``blank``."""
    _, height, width = tensor.shape
    padded = torch.nn.functional.pad(tensor[None], (abs(dx), abs(dx), abs(dy), abs(dy)), value=blank)[0]
    top, left = abs(dy) - dy, abs(dx) - dx
    return padded[:, top:top + height, left:left + width]


def _cut_out(sketch: torch.Tensor, image: torch.Tensor, generator) -> tuple[torch.Tensor, torch.Tensor]:
    """One rectangle, half of each side, blanked in both at the same place (its centre anywhere)."""
    count, _, height, width = image.shape
    cut_h, cut_w = int(height * CUTOUT_FRACTION), int(width * CUTOUT_FRACTION)
    centre_y = torch.randint(0, height, (count,), generator=generator).to(image.device)
    centre_x = torch.randint(0, width, (count,), generator=generator).to(image.device)
    rows = torch.arange(height, device=image.device)[None, :, None]
    columns = torch.arange(width, device=image.device)[None, None, :]
    inside = (((rows - centre_y[:, None, None]).abs() <= cut_h // 2)
              & ((columns - centre_x[:, None, None]).abs() <= cut_w // 2))[:, None]
    return sketch.masked_fill(inside, 1.0), image.masked_fill(inside, 0.0)
