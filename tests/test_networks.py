import pytest
import torch

from sketch2face.networks import GANLoss, PatchDiscriminator, UNetGenerator, count_parameters, init_weights


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
