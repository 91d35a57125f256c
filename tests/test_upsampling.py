"""The warm start of a resize decoder from a transposed one (sketch2face/training/upsampling.py)."""

import pytest
import torch
import torch.nn.functional as F
from accelerate import Accelerator

from sketch2face.networks import UNetGenerator, init_weights
from sketch2face.training.config import TrainConfig
from sketch2face.training.train import Pix2PixTrainer
from sketch2face.training.upsampling import balance_output_phases, balanced_phase_kernel, resize_generator_from, resize_kernel



def transposed_generator(folder=None, ngf=8):
    """A stage 1-4 style generator (transposed convolutions), saved to ``folder`` if given."""
    torch.manual_seed(0)
    generator = UNetGenerator(ngf=ngf, upsample="transposed")
    init_weights(generator)
    if folder is not None:
        generator.save_pretrained(folder)
    return generator


def test_a_transposed_bilinear_kernel_refits_to_the_identity():
    """Bilinear x2 is itself a transposed 4x4 convolution (taps 1/4, 3/4, 3/4, 1/4 per axis). After
    a bilinear resize, the kernel that paints the same image is the one that passes it through."""
    taps = torch.tensor([0.25, 0.75, 0.75, 0.25])
    transposed = torch.outer(taps, taps).view(1, 1, 4, 4)
    identity = torch.zeros(1, 1, 3, 3)
    identity[0, 0, 1, 1] = 1.0
    assert torch.allclose(resize_kernel(transposed), identity, atol=1e-6)

    image = torch.rand(1, 1, 12, 10)
    painted = F.conv_transpose2d(image, transposed, stride=2, padding=1)
    resized = F.conv2d(F.interpolate(image, scale_factor=2, mode="bilinear", align_corners=False),
                       resize_kernel(transposed), padding=1)
    assert torch.allclose(painted[..., 1:-1, 1:-1], resized[..., 1:-1, 1:-1], atol=1e-5)  # borders pad differently


def test_the_refit_is_the_least_squares_fit_of_a_kernel_pair():
    """No other 3x3 kernel paints a closer image than the refit (checked against random nudges)."""
    torch.manual_seed(0)
    transposed = torch.randn(1, 1, 4, 4)
    image = torch.zeros(1, 1, 9, 9)
    image[0, 0, 4, 4] = 1.0  # one lit pixel: the kernel's whole response
    target = F.conv_transpose2d(image, transposed, stride=2, padding=1)
    upsampled = F.interpolate(image, scale_factor=2, mode="bilinear", align_corners=False)

    def error(kernel):
        return (F.conv2d(upsampled, kernel, padding=1) - target).pow(2).sum()

    fitted = resize_kernel(transposed)
    assert all(error(fitted) <= error(fitted + 0.05 * torch.randn_like(fitted)) for _ in range(20))


def test_a_transposed_generator_becomes_a_resize_one_that_keeps_its_encoder():
    transposed = transposed_generator().eval()
    refit = resize_generator_from(transposed).eval()
    assert refit.upsample == "resize" and refit.output_scale == 1
    source = transposed.state_dict()
    for name, value in refit.state_dict().items():
        if name.startswith("encoder."):
            assert torch.equal(value, source[name]), name
    assert torch.equal(refit.decoder[0][1].weight, resize_kernel(transposed.decoder[0][0].weight))
    assert torch.equal(refit.to_image[1].bias, transposed.to_image[0].bias)
    sketch = torch.rand(1, 1, 320, 256) * 2 - 1
    with torch.no_grad():
        assert refit(sketch).shape == transposed(sketch).shape == (1, 3, 320, 256)


def test_a_resize_fine_tune_starts_from_a_transposed_generator_refitted(tmp_path):
    """--init-from a stage 4 style folder with --output-scale 1: the refit, not a refusal."""
    transposed_generator(tmp_path)
    config = TrainConfig(ngf=8, ndf=8, output_scale=1, lambda_perceptual=0.0, lambda_identity=0.0)
    trainer = Pix2PixTrainer(config, Accelerator(cpu=True))
    trainer.init_from(tmp_path)
    expected = resize_generator_from(UNetGenerator.from_pretrained(tmp_path)).state_dict()
    started = trainer.accelerator.unwrap_model(trainer.generator).state_dict()
    assert all(torch.equal(started[name], expected[name]) for name in expected)


def interior_spread(kernel):
    """How much a transposed 4x4 / stride-2 layer's output varies for a flat input, away from the borders."""
    painted = F.conv_transpose2d(torch.ones(1, kernel.shape[0], 8, 8, dtype=kernel.dtype), kernel, stride=2, padding=1)
    return painted[0, :, 2:-2, 2:-2].std(dim=(1, 2)).max().item()


def test_a_phase_balanced_kernel_paints_a_flat_input_flat_with_the_least_change():
    torch.manual_seed(0)
    kernel = torch.randn(3, 2, 4, 4, dtype=torch.float64)
    balanced = balanced_phase_kernel(kernel)
    assert interior_spread(kernel) > 0.5 and interior_spread(balanced) < 1e-12
    torch.testing.assert_close(balanced_phase_kernel(balanced), balanced)  # a projection
    # Least squares: the change is orthogonal to every move within the balanced kernels.
    other = balanced_phase_kernel(torch.randn(3, 2, 4, 4, dtype=torch.float64))
    assert abs(torch.sum((kernel - balanced) * (other - balanced)).item()) < 1e-9
    # The mean tap sum of each channel pair, what a flat input paints, is kept.
    torch.testing.assert_close(balanced.sum(dim=(2, 3)), kernel.sum(dim=(2, 3)))


def test_balancing_a_generator_touches_its_last_layer_only_and_needs_a_transposed_one():
    generator = transposed_generator()
    before = {name: value.clone() for name, value in generator.state_dict().items()}
    balance_output_phases(generator)
    changed = {name for name, value in generator.state_dict().items() if not torch.equal(value, before[name])}
    assert changed == {"to_image.0.weight"}
    assert interior_spread(generator.to_image[0].weight.detach()) < 1e-5
    with pytest.raises(ValueError, match="upsample='transposed'"):
        balance_output_phases(UNetGenerator(ngf=8, upsample="resize"))
