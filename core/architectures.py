"""CNN architectures, registered by name.

Every model takes `(N, 1, 28, 28)` float32 images in [0, 1] (white object on black, as in
Fashion-MNIST) and returns `(N, num_classes)` logits. Input normalisation lives inside the
model, so every backend (eager, ONNX) sees the same [0, 1] input contract.

`NAME-xK` (e.g. `default-x3`) is K members of NAME whose logits are averaged: an ensemble of
separately trained networks, served and exported as one model.
"""

from __future__ import annotations

import re
from collections.abc import Callable

import torch
from torch import nn

# Per-pixel mean and std of the Fashion-MNIST training split, images scaled to [0, 1].
FASHION_MNIST_MEAN = 0.2860
FASHION_MNIST_STD = 0.3530


class Normalize(nn.Module):
    def __init__(self, mean: float, std: float) -> None:
        super().__init__()
        self.register_buffer("mean", torch.tensor(mean))
        self.register_buffer("std", torch.tensor(std))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean) / self.std


class BaselineCNN(nn.Module):
    """The original project's network, layer for layer (its `.pth` files load into it)."""

    def __init__(self, num_classes: int = 10) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(1, 32, 3)
        self.fc1 = nn.Linear(32 * 26 * 26, 128)
        self.fc2 = nn.Linear(128, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.relu(self.conv1(x))  # (N, 32, 26, 26)
        x = torch.relu(self.fc1(x.flatten(1)))  # (N, 128)
        return self.fc2(x)


def conv_bn_relu(c_in: int, c_out: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(c_in, c_out, 3, padding=1, bias=False),
        nn.BatchNorm2d(c_out),
        nn.ReLU(inplace=True),
    )


class DefaultCNN(nn.Module):
    """A VGG-style CNN for CPU serving, ~290k params.

    One conv at 28x28, then two per stage at 14x14 and 7x7: a second 28x28 conv cost 30% of
    the training time for little accuracy on these small, centred images.
    """

    def __init__(self, num_classes: int = 10, width: int = 32, dropout: float = 0.3) -> None:
        super().__init__()
        w1, w2, w3 = width, 2 * width, 4 * width
        self.normalize = Normalize(FASHION_MNIST_MEAN, FASHION_MNIST_STD)
        self.features = nn.Sequential(
            conv_bn_relu(1, w1), nn.MaxPool2d(2),  # (N, w1, 14, 14)
            conv_bn_relu(w1, w2), conv_bn_relu(w2, w2), nn.MaxPool2d(2),  # (N, w2, 7, 7)
            conv_bn_relu(w2, w3), conv_bn_relu(w3, w3), nn.MaxPool2d(2),  # (N, w3, 3, 3)
        )
        self.classifier = nn.Sequential(
            nn.Flatten(), nn.Dropout(dropout), nn.Linear(w3 * 3 * 3, num_classes)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(self.normalize(x)))


class BasicBlock(nn.Module):
    def __init__(self, c_in: int, c_out: int, stride: int) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(c_in, c_out, 3, stride, 1, bias=False), nn.BatchNorm2d(c_out),
            nn.ReLU(inplace=True),
            nn.Conv2d(c_out, c_out, 3, 1, 1, bias=False), nn.BatchNorm2d(c_out),
        )
        self.shortcut = (
            nn.Identity()
            if stride == 1 and c_in == c_out
            else nn.Sequential(nn.Conv2d(c_in, c_out, 1, stride, bias=False),
                               nn.BatchNorm2d(c_out))
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(self.body(x) + self.shortcut(x))


class LargeResNet(nn.Module):
    """A ResNet-style network (~2.8M params) meant for GPU workers."""

    def __init__(self, num_classes: int = 10, width: int = 64) -> None:
        super().__init__()
        self.normalize = Normalize(FASHION_MNIST_MEAN, FASHION_MNIST_STD)
        self.stem = conv_bn_relu(1, width)
        self.stages = nn.Sequential(
            BasicBlock(width, width, 1), BasicBlock(width, width, 1),  # (N, w, 28, 28)
            BasicBlock(width, 2 * width, 2), BasicBlock(2 * width, 2 * width, 1),  # 14x14
            BasicBlock(2 * width, 4 * width, 2), BasicBlock(4 * width, 4 * width, 1),  # 7x7
        )
        self.head = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                                  nn.Linear(4 * width, num_classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.stages(self.stem(self.normalize(x))))


class Ensemble(nn.Module):
    """Members of one architecture; the logits are their mean."""

    def __init__(self, members: list[nn.Module]) -> None:
        super().__init__()
        self.members = nn.ModuleList(members)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.stack([m(x) for m in self.members]).mean(0)  # (N, C)


ARCHITECTURES: dict[str, Callable[[int], nn.Module]] = {
    "baseline": BaselineCNN,
    "default": DefaultCNN,
    "large": LargeResNet,
}
ENSEMBLE = re.compile(r"^(?P<base>[a-z]+)-x(?P<members>[2-9])$")


def ensemble_arch(arch: str, members: int) -> str:
    return arch if members == 1 else f"{arch}-x{members}"


def build_model(arch: str, num_classes: int) -> nn.Module:
    ensemble = ENSEMBLE.match(arch)
    if ensemble and ensemble["base"] in ARCHITECTURES:
        return Ensemble([ARCHITECTURES[ensemble["base"]](num_classes)
                         for _ in range(int(ensemble["members"]))])
    try:
        factory = ARCHITECTURES[arch]
    except KeyError:
        raise ValueError(
            f"Unknown arch {arch!r}; choose one of: {', '.join(ARCHITECTURES)}"
            " (or NAME-xK, K = 2..9: an ensemble)"
        ) from None
    return factory(num_classes)


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
