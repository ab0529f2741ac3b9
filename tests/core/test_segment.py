import time

import numpy as np
from PIL import Image, ImageDraw

from core.preprocessing import preprocess, preprocess_photo
from core.segment import foreground_mask, is_catalogue_shot, on_white


def on_floor(seed: int = 0) -> Image.Image:
    """A dark garment-like shape on a noisy two-tone 'floor' that touches every edge."""
    rng = np.random.default_rng(seed)
    floor = np.zeros((400, 300, 3), np.uint8)
    floor[:, :150] = (170, 120, 80)
    floor[:, 150:] = (190, 140, 95)
    floor = np.clip(floor + rng.normal(0, 8, floor.shape), 0, 255).astype(np.uint8)
    img = Image.fromarray(floor)
    ImageDraw.Draw(img).rectangle((90, 80, 210, 330), fill=(30, 40, 120))
    return img


def test_textured_background_is_painted_white():
    img = on_floor()
    assert not is_catalogue_shot(img)
    mask = foreground_mask(img)
    assert mask is not None
    h, w = mask.shape
    assert mask[h // 2, w // 2] and not mask[2, 2] and not mask[-3, -3]
    white = np.asarray(on_white(img))
    assert white[5, 5] == 255 and white[200, 150] < 100


def test_catalogue_shot_is_left_to_the_paper_conversion():
    img = Image.new("RGB", (300, 400), (250, 250, 250))
    ImageDraw.Draw(img).ellipse((60, 60, 240, 340), fill=(200, 40, 40))
    assert is_catalogue_shot(img)
    assert np.array_equal(np.asarray(on_white(img)), np.asarray(img.convert("L")))


def test_photo_preprocessing_is_deterministic_and_fast(fixture_photos):
    data = [p.read_bytes() for p in fixture_photos]
    start = time.perf_counter()
    first = [preprocess_photo(d) for d in data]
    per_photo = (time.perf_counter() - start) / len(data)
    assert all(np.array_equal(a, preprocess_photo(d)) for a, d in zip(first, data, strict=True))
    assert all(a.shape == (28, 28) and a.dtype == np.uint8 for a in first)
    assert per_photo < 0.2  # ~10-40 ms here; a generous bound for slow CI machines


def test_segmentation_removes_the_floor_the_paper_conversion_keeps():
    import io

    buffer = io.BytesIO()
    on_floor().save(buffer, "JPEG", quality=90)
    seg, paper = preprocess_photo(buffer.getvalue()), preprocess(buffer.getvalue())
    # The floor is background: black at the edges once segmented, grey in the paper version.
    assert seg[:, 0].max() < 20 and paper[:, :2].mean() > 40
