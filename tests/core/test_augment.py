import torch

from core.augment import augment_batch, random_crop, random_erasing, random_hflip


def batch(n=16):
    return torch.rand(n, 1, 28, 28, generator=torch.Generator().manual_seed(1))


def test_crop_shifts_each_image_within_the_padding():
    x = torch.zeros(64, 1, 28, 28)
    x[:, :, 13:15, 13:15] = 1.0  # a 2x2 dot in the centre
    out = random_crop(x, padding=2, generator=torch.Generator().manual_seed(0))
    assert out.shape == x.shape
    assert torch.all(out.sum(dim=(1, 2, 3)) == 4)  # the dot is never cut off
    rows = out.squeeze(1).amax(2).float().argmax(1)
    assert set(rows.tolist()) <= set(range(11, 16)) and len(set(rows.tolist())) > 1


def test_flip_is_seeded_and_flips_about_half():
    x = batch(200)
    a = random_hflip(x, torch.Generator().manual_seed(3))
    b = random_hflip(x, torch.Generator().manual_seed(3))
    assert torch.equal(a, b)
    flipped = (a != x).flatten(1).any(1).sum().item()
    assert 60 < flipped < 140
    same_or_mirror = (a == x).flatten(1).all(1) | (a == x.flip(3)).flatten(1).all(1)
    assert same_or_mirror.all()


def test_erasing_blanks_one_rectangle_only_when_chosen():
    x = torch.ones(100, 1, 28, 28)
    none = random_erasing(x, p=0.0, generator=torch.Generator().manual_seed(0))
    assert torch.equal(none, x)
    out = random_erasing(x, p=1.0, generator=torch.Generator().manual_seed(0))
    erased = (out == 0).flatten(1).sum(1)
    assert torch.all(erased > 0) and torch.all(erased <= 0.2 * 28 * 28 + 28)


def test_augment_batch_keeps_shape_and_range():
    out = augment_batch(batch(), torch.Generator().manual_seed(0), 2, True, 0.5)
    assert out.shape == (16, 1, 28, 28)
    assert out.min() >= 0 and out.max() <= 1
