"""The discriminator's differentiable augmentation (training/augment.py) and its use in the trainer."""

import numpy as np
import pytest
import torch
from accelerate import Accelerator

from sketch2face.training import augment
from sketch2face.training.config import PRE_V2_DEFAULTS, TrainConfig
from sketch2face.training.train import Pix2PixTrainer

from .test_train import face_batch

PIX2PIX = dict(PRE_V2_DEFAULTS)


def dot_pair(y=20, x=24):
    """A sketch with one dark pixel and an image with one bright pixel, at the same place."""
    sketch = torch.ones(4, 1, 48, 64)
    image = torch.full((4, 3, 48, 64), -1.0)
    sketch[:, :, y, x] = -1.0
    image[:, :, y, x] = 1.0
    return sketch, image


def seeded(seed=0):
    return torch.Generator().manual_seed(seed)


def test_policy_names_are_parsed_and_an_unknown_one_is_refused():
    assert augment.parse_policy("") == augment.parse_policy(None) == ()
    assert augment.parse_policy(" color, cutout ") == ("color", "cutout")
    with pytest.raises(ValueError, match="unknown discriminator augmentation flip"):
        augment.parse_policy("color,flip")


def test_translation_moves_sketch_and_image_by_the_same_offset_per_sample():
    sketch, image = dot_pair()
    moved_sketch, moved_image = augment.augment_pair(sketch, image, ("translation",), seeded(3))
    offsets = []
    for index in range(4):
        sketch_at = (moved_sketch[index, 0] < 0).nonzero().tolist()
        image_at = (moved_image[index, 0] > 0).nonzero().tolist()
        assert sketch_at == image_at and len(sketch_at) == 1
        offsets.append((sketch_at[0][0] - 20, sketch_at[0][1] - 24))
        assert abs(offsets[-1][0]) <= 48 // 8 and abs(offsets[-1][1]) <= 64 // 8
    assert len(set(offsets)) > 1  # each sample draws its own move
    # What comes in at the border is blank: paper in the sketch, mid-grey in the image.
    assert set(moved_sketch.unique().tolist()) <= {1.0, -1.0}
    assert set(moved_image.unique().tolist()) <= {1.0, -1.0, 0.0}


def test_cutout_blanks_the_same_half_size_rectangle_in_both():
    sketch, image = -torch.ones(4, 1, 48, 64), torch.full((4, 3, 48, 64), 0.5)
    cut_sketch, cut_image = augment.augment_pair(sketch, image, ("cutout",), seeded(1))
    for index in range(4):
        in_sketch = cut_sketch[index, 0] == 1.0
        assert torch.equal(in_sketch, cut_image[index, 0] == 0.0)
        assert torch.equal(in_sketch, (cut_image[index] == 0.0).all(0))
        rows, columns = in_sketch.nonzero().unbind(1)
        assert rows.max() - rows.min() <= 24 and columns.max() - columns.min() <= 32  # at most half of each side
        assert in_sketch.sum() >= 12 * 16  # at least a quarter of the rectangle stays on the image


def test_colour_changes_the_image_only_and_each_sample_differently():
    sketch, image = face_batch()
    image = image.repeat(2, 1, 1, 1)
    sketch = sketch.repeat(2, 1, 1, 1)
    same_sketch, coloured = augment.augment_pair(sketch, image, ("color",), seeded(2))
    assert torch.equal(same_sketch, sketch)
    changes = [(coloured[index] - image[index]).abs().mean().item() for index in range(4)]
    assert min(changes) > 0.01 and len({round(change, 4) for change in changes}) == 4


def test_gradient_reaches_the_image_through_every_transform_and_one_seed_draws_alike():
    sketch, image = face_batch()
    image = image.clone().requires_grad_(True)
    first = augment.augment_pair(sketch, image, augment.POLICIES, seeded(5))
    (first[1] ** 2).sum().backward()
    assert image.grad is not None and image.grad.abs().sum() > 0
    again = augment.augment_pair(sketch, image.detach(), augment.POLICIES, seeded(5))
    assert torch.equal(first[0], again[0]) and torch.equal(first[1].detach(), again[1])
    other = augment.augment_pair(sketch, image.detach(), augment.POLICIES, seeded(6))
    assert not torch.equal(first[1].detach(), other[1])


def spy_on_discriminator(trainer):
    seen = []
    forward = trainer.discriminator.forward

    def recording(sketch, photo):
        seen.append((sketch.detach().clone(), photo.detach().clone()))
        return forward(sketch, photo)

    trainer.discriminator.forward = recording
    return seen


def augmented_trainer(policy="color,translation,cutout", **options):
    torch.manual_seed(0)
    config = TrainConfig(ngf=8, ndf=8, num_downs=5, batch_size=2, lr=2e-3, discriminator_augment=policy,
                         **{**PIX2PIX, **options})
    return Pix2PixTrainer(config, Accelerator(cpu=True))


def test_train_step_shows_the_discriminator_every_pair_through_one_draw_per_step():
    sketch, photo = face_batch()
    trainer = augmented_trainer()
    seen = spy_on_discriminator(trainer)
    trainer.train_step(sketch, photo)
    assert len(seen) == 3  # real and generated in D's update, generated in G's
    sketches = [s for s, _ in seen]
    assert all(torch.equal(sketches[0], other) for other in sketches[1:])  # one draw for the step
    assert not torch.equal(sketches[0], sketch)
    real_seen = seen[0][1]
    assert not torch.equal(real_seen, photo)
    trainer.train_step(sketch, photo)
    assert not torch.equal(seen[3][0], sketches[0])  # the next step draws again
    # Warm-up updates do not advance the step, and still draw anew each time.
    trainer.discriminator_step(sketch, photo)
    trainer.discriminator_step(sketch, photo)
    assert not torch.equal(seen[-1][0], seen[-3][0])


def test_a_training_step_draws_by_its_step_alone_so_a_resumed_run_draws_alike():
    """Warm-up updates before it (which a resumed run does not repeat) leave a step's draw as it is."""
    sketch, photo = face_batch()
    warmed, fresh = augmented_trainer(), augmented_trainer()
    warmed.discriminator_step(sketch, photo)
    warmed.discriminator_step(sketch, photo)
    seen_warmed, seen_fresh = spy_on_discriminator(warmed), spy_on_discriminator(fresh)
    warmed.train_step(sketch, photo)
    fresh.train_step(sketch, photo)
    assert torch.equal(seen_warmed[0][0], seen_fresh[0][0])


def test_without_a_policy_the_discriminator_sees_the_pairs_as_they_are():
    sketch, photo = face_batch()
    trainer = augmented_trainer(policy="")
    seen = spy_on_discriminator(trainer)
    trainer.train_step(sketch, photo)
    assert torch.equal(seen[0][0], sketch) and torch.equal(seen[0][1], photo)


def test_an_augmented_discriminator_still_learns_to_tell_generated_faces_from_photos():
    sketch, photo = face_batch()
    trainer = augmented_trainer()
    losses = [trainer.discriminator_step(sketch, photo) for _ in range(30)]
    first = np.mean([entry["D_real"] + entry["D_fake"] for entry in losses[:3]])
    last = np.mean([entry["D_real"] + entry["D_fake"] for entry in losses[-3:]])
    assert last < 0.7 * first, (first, last)


def test_trainer_refuses_a_bad_policy_and_a_full_size_generator_in_one_line():
    with pytest.raises(SystemExit, match="--discriminator-augment: unknown discriminator augmentation zoom"):
        augmented_trainer(policy="zoom")
    with pytest.raises(SystemExit, match="only for output_scale 1"):
        torch.manual_seed(0)
        Pix2PixTrainer(TrainConfig(ngf=8, ndf=8, num_downs=5, output_scale=2, discriminator_augment="cutout"),
                       Accelerator(cpu=True))
