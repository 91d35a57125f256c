"""The x2 upscaler: its network, its training on photos, and the pipeline stage that serves it."""

from __future__ import annotations

import json
import shutil
from dataclasses import replace

import cv2
import numpy as np
import pytest
import torch

from sketch2face import ModelLoadError, Sketch2Face, preprocess
from sketch2face.networks import FaceUpscaler, UNetGenerator
from sketch2face.pipeline import UPSCALER_SUBFOLDER, load_upscaler
from sketch2face.restore.alignment import paste_back
from sketch2face.tensors import image_to_tensor
from sketch2face.training import generated_pairs
from sketch2face.training import train_upscaler as training
from sketch2face.training.data import FaceRecord
from .drawings import drawing
from .small_networks import SmallFeatureNetwork
from .test_data import tiny_data_root  # noqa: F401  (fixture)


def test_upscaler_doubles_height_and_width_and_keeps_the_range():
    upscaler = FaceUpscaler(channels=8, blocks=1).eval()
    image = torch.rand(2, 3, 40, 32) * 2 - 1
    with torch.no_grad():
        output = upscaler(image)
    assert output.shape == (2, 3, 80, 64)
    assert output.min() >= -1.0 and output.max() <= 1.0


def test_untrained_upscaler_paints_each_2x2_block_alike_so_it_starts_without_a_checkerboard():
    torch.manual_seed(3)
    upscaler = FaceUpscaler(channels=8, blocks=2).eval()
    image = torch.rand(1, 3, 24, 20) * 0.5 - 0.25  # away from the clamp
    with torch.no_grad():
        correction = upscaler(image) - torch.nn.functional.interpolate(image, scale_factor=2, mode="bilinear", align_corners=False)
    blocks = correction.unfold(2, 2, 2).unfold(3, 2, 2)  # (1, 3, 24, 20, 2, 2)
    assert correction.abs().max() > 1e-3  # there is a correction...
    assert torch.allclose(blocks, blocks[..., :1, :1].expand_as(blocks), atol=1e-6)  # ...constant per block


@pytest.fixture(scope="module")
def photo_root(tmp_path_factory):
    """A data folder of made-up 'photos' (smooth shading plus sharp shapes), laid out like ../shared/data."""
    root = tmp_path_factory.mktemp("photos")
    rng = np.random.default_rng(0)
    for folder in training.UPSCALER_PHOTO_FOLDERS:
        (root / "faces" / folder).mkdir(parents=True)
        for index in range(3):
            y, x = np.mgrid[0:160, 0:128]
            image = np.stack([x * 1.5, y * 1.2, np.full_like(x, 90)], -1).astype(np.uint8)
            for _ in range(12):
                centre = (int(rng.integers(0, 128)), int(rng.integers(0, 160)))
                colour = tuple(int(value) for value in rng.integers(0, 256, 3))
                cv2.circle(image, centre, int(rng.integers(3, 20)), colour, int(rng.integers(1, 4)))
            cv2.imwrite(str(root / "faces" / folder / f"{index:03d}.jpg"), image, [cv2.IMWRITE_JPEG_QUALITY, 98])
    (root / "faces" / "canada").mkdir()
    return root


def test_training_pairs_are_a_patch_and_its_softened_half_size():
    config = training.UpscalerConfig(patch_size=32)
    photo = np.random.default_rng(1).integers(0, 256, (100, 80, 3), dtype=np.uint8)
    small, target = training.make_pair(photo, np.random.default_rng(2), config)
    assert target.shape == (32, 32, 3) and small.shape == (16, 16, 3)
    assert small.dtype == target.dtype == np.uint8
    again = training.make_pair(photo, np.random.default_rng(2), config)
    assert np.array_equal(again[0], small) and np.array_equal(again[1], target)  # the seed decides everything


def test_upscaler_training_never_reads_the_held_out_photos(photo_root):
    with pytest.raises(ValueError, match="held out"):
        training.load_photos(photo_root, folders=("canada",))


def test_a_short_training_lowers_the_loss_exports_a_loadable_folder_and_resumes(photo_root, tmp_path):
    config = training.UpscalerConfig(channels=8, blocks=1, steps=60, batch_size=4, patch_size=32, lr=3e-3,
                                     checkpoint_every=30, min_photo_scale=1.0)
    training.train_upscaler(config, tmp_path, photo_root, log_every=5)
    log = [json.loads(line) for line in (tmp_path / "log.jsonl").read_text().splitlines()]
    first, last = np.mean([row["L1"] for row in log[:3]]), np.mean([row["L1"] for row in log[-3:]])
    assert last < 0.8 * first, (first, last)
    loaded = FaceUpscaler.from_pretrained(tmp_path / "upscaler")
    assert (loaded.channels, loaded.blocks) == (8, 1)
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["steps_done"] == 60 and summary["machine"]
    card = (tmp_path / "upscaler" / "README.md").read_text()
    assert "60 steps of batch 4" in card and f"--out {tmp_path.as_posix()} --channels 8 --blocks 1" in card

    longer = replace(config, steps=70)
    with pytest.raises(SystemExit, match="another configuration"):
        training.train_upscaler(longer, tmp_path, photo_root, resume=True)
    training.train_upscaler(config, tmp_path, photo_root, resume=True)  # already done: no step more
    assert len((tmp_path / "log.jsonl").read_text().splitlines()) == len(log)


@pytest.fixture(scope="module")
def weights_with_upscaler(tiny_model_dir, tmp_path_factory):
    directory = tmp_path_factory.mktemp("with-upscaler")
    for name in ("config.json", "model.safetensors"):
        shutil.copy(tiny_model_dir / name, directory / name)
    torch.manual_seed(1)
    FaceUpscaler(channels=8, blocks=1).save_pretrained(directory / UPSCALER_SUBFOLDER)
    return directory


def test_a_sketchpad_drawing_comes_back_at_least_at_its_own_size(weights_with_upscaler, tiny_model_dir):
    sketch = drawing(size=(512, 640))
    upscaled = Sketch2Face.from_pretrained(weights_with_upscaler)
    assert upscaled.upscaler is not None
    face = upscaled(sketch)
    assert face.size[0] >= 512 and face.size[1] >= 640

    # Without the upscaler the face is enlarged by bicubic resizing, to the drawing's own size.
    resized = Sketch2Face.from_pretrained(weights_with_upscaler, upscale=False)
    assert resized.upscaler is None and Sketch2Face.from_pretrained(tiny_model_dir).upscaler is None
    assert resized(sketch).size == (512, 640)

    # full_size=False: the canvas's resolution, with or without an upscaler (the live preview).
    small = upscaled.generate(sketch, full_size=False).image
    assert small.size == preprocess.output_size(preprocess.normalise(sketch)) and small.size[0] < 512
    assert np.array_equal(np.asarray(resized.generate(sketch, full_size=False).image), np.asarray(small))


def test_a_drawing_smaller_than_the_canvas_framing_keeps_the_canvas_face(weights_with_upscaler):
    """A CUFS-sized drawing (200x250) already gets more than its own size from the canvas face, so
    the upscaler is skipped and full size is the canvas's resolution; the Sketchpad's is not."""
    pipeline = Sketch2Face.from_pretrained(weights_with_upscaler)
    calls = []
    upscale = pipeline.upscale
    pipeline.upscale = lambda face: calls.append(face.shape) or upscale(face)
    small = drawing(size=(200, 250))
    face = pipeline.generate(small).image
    assert calls == [] and not pipeline.needs_enlarging(preprocess.normalise(small))
    assert face.size[0] >= 200 and face.size[1] >= 250
    assert np.array_equal(np.asarray(face), np.asarray(pipeline.generate(small, full_size=False).image))
    pipeline.generate(drawing(size=(512, 640)))
    assert calls == [(320, 256, 3)]


def test_the_upscaled_face_is_the_upscalers_output_of_the_generated_one(weights_with_upscaler):
    pipeline = Sketch2Face.from_pretrained(weights_with_upscaler)
    canvas = preprocess.normalise(drawing()).canvas
    face = pipeline.generate_canvas(canvas)
    with torch.no_grad():
        expected = pipeline.upscaler(torch.from_numpy(face).permute(2, 0, 1)[None].float() / 127.5 - 1)
    expected = ((expected[0].permute(1, 2, 0) + 1) * 127.5).round().clamp(0, 255).numpy()
    assert np.abs(pipeline.upscale(face).astype(float) - expected).max() <= 1.0


def test_a_full_size_generator_is_not_upscaled_again(tmp_path):
    UNetGenerator(ngf=8, upsample="resize", output_scale=2).save_pretrained(tmp_path)
    FaceUpscaler(channels=8, blocks=1).save_pretrained(tmp_path / UPSCALER_SUBFOLDER)
    pipeline = Sketch2Face.from_pretrained(tmp_path)
    assert pipeline.upscaler is None
    assert pipeline.generate(drawing(size=(512, 640))).image.size[0] >= 512


def test_a_broken_upscaler_folder_is_a_one_line_model_load_error(weights_with_upscaler, tmp_path):
    for name in ("config.json", "model.safetensors"):
        shutil.copy(weights_with_upscaler / name, tmp_path / name)
    (tmp_path / UPSCALER_SUBFOLDER).mkdir()
    (tmp_path / UPSCALER_SUBFOLDER / "config.json").write_text("{}")
    with pytest.raises(ModelLoadError, match="no model.safetensors"):
        Sketch2Face.from_pretrained(tmp_path)
    (tmp_path / UPSCALER_SUBFOLDER / "model.safetensors").write_bytes(b"not safetensors")
    with pytest.raises(ModelLoadError, match="Could not load the upscaler") as excinfo:
        load_upscaler(tmp_path)
    assert "\n" not in str(excinfo.value)


def test_an_unreachable_hub_names_the_upscaler_it_could_not_fetch(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ModelLoadError, match="nobody/nothing/upscaler' from the Hugging Face Hub: HF_HUB_OFFLINE") as excinfo:
        load_upscaler("nobody/nothing")
    assert "upscale=False" in str(excinfo.value)


def test_restoration_keeps_the_upscaled_face_around_the_restored_one():
    rng = np.random.default_rng(0)
    face = rng.integers(0, 256, (320, 256, 3), dtype=np.uint8)
    restored = np.full((512, 512, 3), 128, np.uint8)
    upscaled = rng.integers(0, 256, (640, 512, 3), dtype=np.uint8)
    pasted = paste_back(face, restored, upscaled=upscaled)
    assert np.array_equal(pasted[:8, :8], upscaled[:8, :8])  # a corner, far outside the face
    assert np.abs(pasted[320, 256].astype(int) - 128).max() <= 1  # the middle is the restored face
    with pytest.raises(ValueError, match="2x the face"):
        paste_back(face, restored, upscaled=upscaled[:600])


def test_gfpgan_pastes_into_the_upscaled_face_and_a_skipped_restoration_still_returns_it(weights_with_upscaler):
    from sketch2face.restore import RestorationUnavailable

    seen = {}

    class Recording:
        def restore(self, face, upscaled=None):
            seen["face"], seen["upscaled"] = face.shape, upscaled.shape
            return upscaled

    class Unavailable:
        def restore(self, face, upscaled=None):
            raise RestorationUnavailable("offline.")

    sketch = drawing(size=(512, 640))
    plain = np.asarray(Sketch2Face.from_pretrained(weights_with_upscaler).generate(sketch).image)
    restored = Sketch2Face.from_pretrained(weights_with_upscaler, restorer=Recording()).generate(sketch, enhance=True)
    assert seen == {"face": (320, 256, 3), "upscaled": (640, 512, 3)}
    assert restored.restoration.applied and np.array_equal(np.asarray(restored.image), plain)
    skipped = Sketch2Face.from_pretrained(weights_with_upscaler, restorer=Unavailable()).generate(sketch, enhance=True)
    assert not skipped.restoration.applied and np.array_equal(np.asarray(skipped.image), plain)


def test_a_hub_repo_without_an_upscaler_loads_without_one(hub_without_files):
    assert load_upscaler("someone/older-model") is None
    assert hub_without_files == [("someone/older-model", UPSCALER_SUBFOLDER, "config.json")]


# --- Training on the generator's own faces (generated_pairs.py, --inputs generated) ---



def _record(name: str) -> FaceRecord:
    return FaceRecord(name=name, photo=np.zeros((320, 256, 3), np.uint8))


def test_the_people_split_keeps_a_persons_photos_together_and_every_eighth_person_out():
    names = [f"faces/london_neutral/{person:03d}_03.jpg" for person in range(1, 17)]
    names += [f"faces/london_smiling/{person:03d}_08.jpg" for person in range(1, 17)]
    names += ["faces/3dsk/f_agata.jpg", "faces/3dsk/m_bob.jpg"]
    training_side, validation = generated_pairs.split_people([_record(name) for name in names])
    people = lambda records: {generated_pairs.person_of(record.name) for record in records}  # noqa: E731
    assert not people(training_side) & people(validation)
    assert len(training_side) + len(validation) == len(names)
    # 18 people sorted: 3dsk:f_agata, 3dsk:m_bob, london:001 ... london:016; every eighth from the first
    assert people(validation) == {"3dsk:f_agata", "london:007", "london:015"}
    assert {record.name for record in validation} >= {"faces/london_neutral/007_03.jpg", "faces/london_smiling/007_08.jpg"}


def _nearest_twice(image: np.ndarray) -> np.ndarray:
    return np.repeat(np.repeat(image, 2, axis=0), 2, axis=1)


def test_generated_crops_line_up_with_their_photo_at_twice_the_size():
    rng = np.random.default_rng(4)
    faces = rng.integers(0, 256, (3, 40, 32, 3), dtype=np.uint8)
    pairs = generated_pairs.GeneratedPairs(faces, np.stack([_nearest_twice(face) for face in faces]), ["doodle"] * 3, ["x"] * 3)
    config = training.UpscalerConfig(batch_size=12, patch_size=16)
    inputs, targets = training.batch_of_generated_crops(pairs, rng, config)
    assert inputs.shape == (12, 3, 8, 8) and targets.shape == (12, 3, 16, 16)
    # The photo is the face at 2x (nearest), so each target crop is its input crop at 2x, flips included.
    expected = torch.repeat_interleave(torch.repeat_interleave(inputs, 2, dim=2), 2, dim=3)
    assert torch.equal(targets, expected)
    unflipped = [image_to_tensor(np.ascontiguousarray(face[top: top + 8, left: left + 8]))
                 for face in faces for top in range(40 - 8 + 1) for left in range(32 - 8 + 1)]
    mirrored = sum(not any(torch.equal(crop, candidate) for candidate in unflipped) for crop in inputs)
    assert 0 < mirrored < 12  # some crops were mirrored, some not


def test_generated_pairs_are_cached_under_the_key_that_made_them(tmp_path):
    builds = []

    def build():
        builds.append(1)
        faces = np.full((2, 8, 6, 3), len(builds), np.uint8)
        return generated_pairs.GeneratedPairs(faces, np.zeros((2, 16, 12, 3), np.uint8), ["pencil", "doodle"], ["a", "b"])

    cache = tmp_path / "pairs.npz"
    first = generated_pairs.cached_pairs(cache, {"seed": 1}, build)
    again = generated_pairs.cached_pairs(cache, {"seed": 1}, build)
    assert len(builds) == 1 and np.array_equal(first.faces, again.faces) and again.styles == ["pencil", "doodle"]
    other = generated_pairs.cached_pairs(cache, {"seed": 2}, build)
    assert len(builds) == 2 and other.faces[0, 0, 0, 0] == 2  # another key: built again and stored in its place
    assert not list(tmp_path.glob("*.tmp*"))


def test_the_adversarial_and_perceptual_terms_fall_in_a_few_real_steps():
    torch.manual_seed(0)
    config = training.UpscalerConfig(channels=8, blocks=1, lr=2e-3, lambda_perceptual=0.5, lambda_gan=0.05, ndf=8)
    losses = training.UpscalerLosses(config, SmallFeatureNetwork().features)
    upscaler = FaceUpscaler(channels=8, blocks=1)
    optimiser = torch.optim.Adam(upscaler.parameters(), lr=config.lr)
    rng = np.random.default_rng(0)
    # Photos with structure at several scales; the input is each one shrunk and blurred.
    photos_uint8 = [np.clip(cv2.GaussianBlur(rng.normal(128, 90, (48, 48, 3)), (0, 0), 2.0) * 2 - 128, 0, 255).astype(np.uint8)
                    for _ in range(4)]
    small = torch.stack([image_to_tensor(cv2.GaussianBlur(cv2.resize(photo, (24, 24), interpolation=cv2.INTER_AREA), (0, 0), 1.0))
                         for photo in photos_uint8])
    photos = torch.stack([image_to_tensor(photo) for photo in photos_uint8])
    history = []
    for _ in range(40):
        upscaled = upscaler(small)
        terms = losses.generator_terms(upscaled, photos)
        optimiser.zero_grad()
        losses.weighted(terms).backward()
        optimiser.step()
        terms |= losses.update_discriminator(upscaled, photos)
        history.append({name: value.item() for name, value in terms.items()})
    assert set(history[0]) == {"L1", "perceptual", "G_GAN", "D_real", "D_fake"}
    mean = lambda name, rows: np.mean([row[name] for row in rows])  # noqa: E731
    for name in ("L1", "perceptual"):
        assert mean(name, history[-5:]) < 0.8 * mean(name, history[:5]), name
    discriminator = mean("D_real", history[-5:]) + mean("D_fake", history[-5:])
    assert discriminator < 0.8 * (mean("D_real", history[:5]) + mean("D_fake", history[:5]))  # it learns to tell them apart
    # The generator step must not train the discriminator: its weights have no gradient from G_GAN.
    assert all(parameter.requires_grad for parameter in losses.discriminator.parameters())


def _with_more_london_people(root, people: int):
    """tiny_data_root has one London person, who the split keeps for validation: add more."""
    import csv
    photo = cv2.imread(str(root / "faces" / "london_neutral" / "001_03.jpg"))
    with open(root / "faces" / "eyes.csv", "a", newline="") as handle:
        for person in range(2, people + 1):
            cv2.imwrite(str(root / "faces" / "london_neutral" / f"{person:03d}_03.jpg"), np.roll(photo, person, axis=1))
            csv.writer(handle).writerow([f"london_neutral/{person:03d}_03.jpg", 200.0 + person, 326.0, 312.0 + person, 326.0])
    return root


def test_training_on_generated_faces_logs_every_term_writes_its_card_and_resumes(tiny_data_root, tmp_path):  # noqa: F811
    root = _with_more_london_people(tiny_data_root, 3)
    generator = tmp_path / "generator"
    torch.manual_seed(0)
    UNetGenerator(ngf=4, num_downs=6).save_pretrained(generator)
    config = training.UpscalerConfig(channels=4, blocks=1, steps=6, batch_size=2, patch_size=32, inputs="generated", draws=2,
                                     lambda_perceptual=0.5, lambda_gan=0.05, ndf=8, checkpoint_every=3)
    out = tmp_path / "run"
    training.train_upscaler(config, out, root, log_every=1, generator=str(generator),
                            perceptual_features=SmallFeatureNetwork().features)
    log = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]
    assert len(log) == 6 and {"L1", "perceptual", "G_GAN", "D_real", "D_fake"} <= set(log[0])
    summary = json.loads((out / "summary.json").read_text())
    assert summary["photos"] == 2 and summary["faces"] == 4  # persons 002 and 003 (001 is kept out), two sketches each
    card = (out / "upscaler" / "README.md").read_text()
    assert "0.5 perceptual (darknet-tiny)" in card and "4 synthetic sketches (2 a photo" in card and f"--generator {generator}" in card
    assert (out / "generated_training_pairs.npz").exists()
    FaceUpscaler.from_pretrained(out / "upscaler")
    training.train_upscaler(config, out, root, resume=True, generator=str(generator),
                            perceptual_features=SmallFeatureNetwork().features)
    assert len((out / "log.jsonl").read_text().splitlines()) == 6  # done already: no step more


def test_the_detail_target_keeps_the_generated_faces_colours_and_the_photos_detail():
    torch.manual_seed(2)
    smooth = lambda shape: torch.nn.functional.interpolate(torch.rand(shape) * 2 - 1, size=(96, 96), mode="bicubic",  # noqa: E731
                                                           align_corners=False).clamp(-0.6, 0.6)
    photos = smooth((2, 3, 6, 6)) * 0.5 + (torch.rand(2, 3, 96, 96) - 0.5) * 0.3  # coarse colours + fine detail
    faces = smooth((2, 3, 6, 6))[..., ::2, ::2] * 0.5  # other coarse colours, half size, no detail
    target = training.keep_generator_colours(faces, photos, sigma=6.0)
    base = torch.nn.functional.interpolate(faces, size=(96, 96), mode="bilinear", align_corners=False)
    coarse = lambda images: training.gaussian_blur(images, 16.0)  # noqa: E731  (well below the split)
    fine = lambda images: images - training.gaussian_blur(images, 1.0)  # noqa: E731  (well above it)
    mean_difference = lambda a, b: (a - b).abs().mean().item()  # noqa: E731
    assert mean_difference(coarse(target), coarse(base)) < 0.2 * mean_difference(coarse(photos), coarse(base))  # the face's colours
    assert mean_difference(fine(target), fine(photos)) < 0.2 * mean_difference(fine(base), fine(photos))  # the photo's detail


def test_gaussian_blur_keeps_a_flat_image_and_lets_gradients_through():
    flat = torch.full((1, 3, 20, 24), 0.25, requires_grad=True)
    blurred = training.gaussian_blur(flat, 2.0)
    assert blurred.shape == flat.shape and torch.allclose(blurred, torch.full_like(blurred, 0.25), atol=1e-6)
    blurred.sum().backward()
    assert flat.grad is not None and flat.grad.abs().sum() > 0
