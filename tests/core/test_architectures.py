import pytest
import torch
from torch import nn

from core.architectures import ARCHITECTURES, BaselineCNN, build_model, count_parameters


@pytest.mark.parametrize("arch", list(ARCHITECTURES))
def test_every_arch_maps_images_to_logits(arch):
    model = build_model(arch, num_classes=7).eval()
    assert model(torch.rand(3, 1, 28, 28)).shape == (3, 7)


def test_baseline_is_the_original_network_layer_for_layer():
    model = BaselineCNN()
    layers = [(name, type(m)) for name, m in model.named_children()]
    assert layers == [("conv1", nn.Conv2d), ("fc1", nn.Linear), ("fc2", nn.Linear)]
    assert model.conv1.weight.shape == (32, 1, 3, 3)
    assert model.fc1.weight.shape == (128, 32 * 26 * 26)
    assert model.fc2.weight.shape == (10, 128)


def test_default_is_cpu_friendly():
    model = build_model("default", 10)
    assert count_parameters(model) < 1_000_000
    assert any(isinstance(m, nn.BatchNorm2d) for m in model.modules())
    assert any(isinstance(m, nn.Dropout) for m in model.modules())


def test_unknown_arch_fails_listing_the_choices():
    with pytest.raises(ValueError, match="choose one of: baseline, default, large"):
        build_model("resnet9000", 10)


def test_ensemble_averages_its_members_logits():
    model = build_model("default-x3", 10).eval()
    assert len(model.members) == 3
    x = torch.rand(4, 1, 28, 28)
    with torch.inference_mode():
        expected = torch.stack([m(x) for m in model.members]).mean(0)
        assert torch.allclose(model(x), expected)
    with pytest.raises(ValueError, match="NAME-xK"):
        build_model("nope-x3", 10)
