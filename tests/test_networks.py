import pytest
import torch

from sketch2face.networks import (
    GANLoss,
    MultiScalePatchDiscriminator,
    PatchDiscriminator,
    UNetGenerator,
    _up,
    count_parameters,
    init_weights,
)


@pytest.mark.parametrize("ngf,num_downs,size", [(8, 6, (320, 256)), (4, 5, (64, 96)), (8, 8, (256, 256))])
def test_generator_maps_sketch_to_photo_shape(ngf, num_downs, size):
    generator = UNetGenerator(ngf=ngf, num_downs=num_downs).eval()
    sketch = torch.rand(2, 1, *size) * 2 - 1
    with torch.no_grad():
        photo = generator(sketch)
    assert photo.shape == (2, 3, *size)
    assert photo.min() >= -1 and photo.max() <= 1  # tanh output


def test_generator_skip_connections_carry_fine_detail():
    """The outermost skip means a pixel-level change in the sketch changes the output locally."""
    torch.manual_seed(0)
    generator = UNetGenerator(ngf=8, num_downs=6).eval()
    init_weights(generator)
    sketch = torch.ones(1, 1, 128, 128)
    changed = sketch.clone()
    changed[..., 10, 10] = -1.0
    with torch.no_grad():
        difference = (generator(changed) - generator(sketch)).abs().sum(1)[0]
    assert difference[8:13, 8:13].sum() > 0
    assert difference[100:, 100:].sum() < difference[8:13, 8:13].sum()


def test_default_generator_size_is_small_enough_to_ship():
    parameters = count_parameters(UNetGenerator())
    assert 1e6 < parameters * 4 < 60e6  # fp32 safetensors under the 60 MB budget


def test_patch_discriminator_is_conditional_70x70_patchgan():
    discriminator = PatchDiscriminator(ndf=8)
    sketch, photo = torch.zeros(1, 1, 256, 256), torch.zeros(1, 3, 256, 256)
    assert discriminator(sketch, photo).shape == (1, 1, 30, 30)  # pix2pix's 30x30 patch map at 256
    assert discriminator.model[0].in_channels == 4  # sees the sketch and the photo together
    # Receptive field of one output logit: perturb one input pixel, count affected logits.
    sketch_requires = torch.zeros(1, 1, 256, 256, requires_grad=True)
    discriminator.eval()
    discriminator(sketch_requires, photo)[0, 0, 15, 15].backward()
    rows = torch.nonzero(sketch_requires.grad[0, 0].abs().sum(1)).flatten()
    assert rows.max() - rows.min() + 1 == 70


def test_gan_loss_targets():
    loss = GANLoss()
    confident_real = torch.full((1, 1, 4, 4), 10.0)
    assert loss(confident_real, True) < 1e-3
    assert loss(confident_real, False) > 5


# -- generator v2: resize upsampling, full-size output, multi-scale discriminator ----------------


@pytest.mark.parametrize("output_scale", [1, 2])
def test_resize_generator_maps_the_canvas_to_output_scale_times_its_size(output_scale):
    generator = UNetGenerator(ngf=8, upsample="resize", output_scale=output_scale).eval()
    sketch = torch.rand(2, 1, 320, 256) * 2 - 1
    with torch.no_grad():
        photo = generator(sketch)
    assert photo.shape == (2, 3, 320 * output_scale, 256 * output_scale)
    assert photo.min() >= -1 and photo.max() <= 1
    assert not any(isinstance(layer, torch.nn.ConvTranspose2d) for layer in generator.modules())


def test_full_size_pipeline_turns_a_512x640_drawing_into_at_least_a_512x640_face(tmp_path):
    """The Sketchpad's 512x640, filled edge to edge: the worst case for the framing's scale."""
    from sketch2face import Sketch2Face

    from .drawings import drawing

    UNetGenerator(ngf=8, upsample="resize", output_scale=2).save_pretrained(tmp_path)
    full = Sketch2Face.from_pretrained(tmp_path)
    assert full.generator.output_scale == 2
    face = full(drawing(size=(512, 640)))
    assert face.size[0] >= 512 and face.size[1] >= 640
    assert abs(face.size[0] / face.size[1] - 512 / 640) < 0.01


def test_canvas_size_generator_gives_the_drawing_its_size_or_the_canvas_resolution_when_asked(tiny_pipeline):
    """Without the refiner or an upscaler the face is enlarged to the drawing's size; full_size=False
    keeps the canvas's resolution (the live preview)."""
    from .drawings import drawing

    sketch = drawing(size=(512, 640))
    assert tiny_pipeline(sketch).size == (512, 640)
    assert tiny_pipeline.generate(sketch, full_size=False).image.size[0] < 512


def test_a_config_without_the_new_keys_loads_the_original_network(tmp_path):
    """Stages 1-4 were exported before upsample/output_scale existed: their config.json lacks them."""
    import json

    UNetGenerator(ngf=4, upsample="transposed").save_pretrained(tmp_path)
    config = json.loads((tmp_path / "config.json").read_text())
    old = {name: value for name, value in config.items() if name not in ("upsample", "output_scale")}
    (tmp_path / "config.json").write_text(json.dumps(old))
    generator = UNetGenerator.from_pretrained(tmp_path, strict=True)
    assert generator.upsample == "transposed" and generator.output_scale == 1
    assert isinstance(generator.to_image[0], torch.nn.ConvTranspose2d)


def test_generator_options_are_checked():
    with pytest.raises(ValueError, match="upsample must be one of"):
        UNetGenerator(upsample="pixelshuffle")
    with pytest.raises(ValueError, match="output_scale must be one of"):
        UNetGenerator(upsample="resize", output_scale=3)
    with pytest.raises(ValueError, match="needs upsample='resize'"):
        UNetGenerator(output_scale=2)


def _upsampling_of_a_constant(upsample: str) -> torch.Tensor:
    torch.manual_seed(0)
    block = _up(8, 8, dropout=False, upsample=upsample)
    init_weights(block)
    block.eval()
    with torch.no_grad():
        return block(torch.full((1, 8, 16, 16), 0.7))[0]


def test_resize_upsampling_of_a_constant_map_is_constant_away_from_the_borders():
    """No checkerboard: every output pixel sees the same (bilinear) input, so a flat feature map
    stays flat. A transposed 4x4 stride-2 convolution gives odd and even pixels different kernel
    taps, and the same flat map comes out as a 2-pixel pattern."""
    resized = _upsampling_of_a_constant("resize")[:, 2:-2, 2:-2]
    transposed = _upsampling_of_a_constant("transposed")[:, 2:-2, 2:-2]
    assert resized.shape == transposed.shape == (8, 28, 28)
    spread = lambda maps: (maps.amax(dim=(1, 2)) - maps.amin(dim=(1, 2))).max().item()  # noqa: E731
    assert spread(resized) < 1e-5
    assert spread(transposed) > 1e-2


def test_resize_generator_output_has_no_two_pixel_pattern():
    """The whole network on a blank page: the energy at the 2-pixel period (the checkerboard)."""

    def checkerboard_energy(generator):
        init_weights(generator)
        with torch.no_grad():
            face = generator.eval()(torch.ones(1, 1, 128, 128))[0, :, 16:-16, 16:-16]
        spectrum = torch.fft.fft2(face - face.mean(dim=(1, 2), keepdim=True)).abs()
        nyquist = spectrum[:, 48, :].sum() + spectrum[:, :, 48].sum()
        return (nyquist / spectrum.sum()).item()

    torch.manual_seed(0)
    transposed = checkerboard_energy(UNetGenerator(ngf=8, num_downs=5))
    torch.manual_seed(0)
    resized = checkerboard_energy(UNetGenerator(ngf=8, num_downs=5, upsample="resize"))
    assert resized < 0.2 * transposed, (resized, transposed)


def test_multiscale_discriminator_returns_features_per_scale_and_resizes_the_sketch():
    discriminator = MultiScalePatchDiscriminator(num_scales=2, ndf=8)
    sketch, photo = torch.zeros(1, 1, 128, 128), torch.zeros(1, 3, 256, 256)  # a x2 generator's pair
    full, half = discriminator(sketch, photo)
    assert [feature.shape[1] for feature in full] == [8, 16, 32, 64, 1]  # four blocks, then the logits
    assert full[-1].shape == (1, 1, 30, 30) and half[-1].shape == (1, 1, 14, 14)
    single = PatchDiscriminator(ndf=8)
    assert torch.equal(single.features(sketch, photo)[-1], single(sketch, photo))


def test_multiscale_discriminator_takes_a_single_patchgan_checkpoint_as_its_first_scale():
    old = PatchDiscriminator(ndf=8)
    new = MultiScalePatchDiscriminator(num_scales=1, ndf=8)
    new.load_state_dict(old.state_dict())
    sketch, photo = torch.rand(1, 1, 64, 64), torch.rand(1, 3, 64, 64)
    old.eval(), new.eval()
    with torch.no_grad():
        assert torch.equal(new(sketch, photo)[0][-1], old(sketch, photo))
