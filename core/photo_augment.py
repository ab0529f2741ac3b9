"""Training data for the photo model, made before preprocessing (numpy and Pillow).

- `photo_variants`: each training photo re-shot at random (crop, mirror, tilt, light,
  colour), then put through the served preprocessing, so the model sees what preprocessing
  makes of many framings of one garment rather than one 28x28 image of it.
- `worn_images`: catalogue shots often show the garment worn by a model (a head above a top,
  jeans below it). No licensed photo shows that, so it is drawn from Fashion-MNIST parts: a
  top with a head above and the upper part of a trouser image below, trousers with a top and
  a head above, a dress with a head and legs; composed bright-on-black, then converted like a
  photo on white.
"""

from __future__ import annotations

import random
from collections.abc import Callable

import numpy as np
from PIL import Image, ImageDraw, ImageEnhance, ImageOps

from core.preprocessing import to_fashion_mnist

TOPS = (0, 2, 4, 6)  # T-shirt/top, Pullover, Coat, Shirt
TROUSER, DRESS = 1, 3
WORN_CLASSES = (*TOPS, TROUSER, DRESS)
PART_WIDTH = 56  # px: parts are composed at twice the output size


def jitter(img: Image.Image, rng: random.Random) -> Image.Image:
    """One random re-framing of an RGB photo: crop 75-100% of the area (aspect 0.85-1.18),
    mirror (p .5), tilt +-10 deg (p .5), brightness and contrast +-25%, saturation 0.5-1.5."""
    w, h = img.size
    scale, aspect = rng.uniform(0.75, 1.0), rng.uniform(0.85, 1.18)
    cw, ch = min(w, int(w * scale * aspect ** 0.5)), min(h, int(h * scale / aspect ** 0.5))
    x0, y0 = rng.randint(0, w - cw), rng.randint(0, h - ch)
    img = img.crop((x0, y0, x0 + cw, y0 + ch))
    if rng.random() < 0.5:
        img = ImageOps.mirror(img)
    if rng.random() < 0.5:
        img = img.rotate(rng.uniform(-10, 10), resample=Image.Resampling.BILINEAR,
                         fillcolor=img.getpixel((0, 0)))
    img = ImageEnhance.Brightness(img).enhance(rng.uniform(0.75, 1.25))
    img = ImageEnhance.Contrast(img).enhance(rng.uniform(0.75, 1.25))
    return ImageEnhance.Color(img).enhance(rng.uniform(0.5, 1.5))


def photo_variants(img: Image.Image, convert: Callable[[Image.Image], np.ndarray], count: int,
                   rng: random.Random) -> list[np.ndarray]:
    """`count` jittered conversions of one decoded RGB photo, each (28, 28) uint8."""
    return [convert(jitter(img, rng)) for _ in range(count)]


def _tight(a: np.ndarray) -> np.ndarray:
    """The bounding box of the object (pixels above 20) in a bright-on-black image."""
    ys, xs = np.nonzero(a > 20)
    return a[ys.min():ys.max() + 1, xs.min():xs.max() + 1] if len(ys) else a


def _width(a: np.ndarray, width: float) -> np.ndarray:
    width = max(1, int(width))
    height = max(1, round(a.shape[0] * width / a.shape[1]))
    return np.asarray(Image.fromarray(a).resize((width, height), Image.Resampling.BILINEAR))


def _head(rng: np.random.Generator, body_width: int) -> np.ndarray:
    """A face (skin, dim once negated) under hair (bright), with a neck; drawn at 4x."""
    hw = max(3, round(body_width * rng.uniform(0.22, 0.32)))
    hh = round(hw * rng.uniform(1.15, 1.45))
    skin, hair = int(rng.uniform(40, 130)), int(rng.uniform(120, 240))
    face = Image.new("L", (hw * 4, hh * 5), 0)
    draw = ImageDraw.Draw(face)
    draw.rectangle((hw, hh * 4 - 2, hw * 3, hh * 5), fill=skin)  # neck
    draw.ellipse((0, 0, hw * 4 - 1, hh * 4 - 1), fill=skin)
    draw.pieslice((0, 0, hw * 4 - 1, hh * 4 - 1), 180, 360, fill=hair)
    return np.asarray(face.resize((hw, hh + max(1, hh // 4)), Image.Resampling.BILINEAR))


def _legs(rng: np.random.Generator, width: int, height: int) -> np.ndarray:
    img = Image.new("L", (max(width, 3), max(height, 1)), 0)
    draw = ImageDraw.Draw(img)
    skin = int(rng.uniform(40, 130))
    leg, gap, cx = max(1, round(width * 0.18)), max(1, round(width * 0.12)), width // 2
    draw.rectangle((cx - gap - leg, 0, cx - gap, height), fill=skin)
    draw.rectangle((cx + gap, 0, cx + gap + leg, height), fill=skin)
    return np.asarray(img)


def _stack(parts: list[np.ndarray], overlap: int = 2) -> np.ndarray:
    """Parts centred one under the other, overlapping by `overlap` rows (brightest wins)."""
    width = max(p.shape[1] for p in parts)
    height = sum(p.shape[0] for p in parts) - overlap * (len(parts) - 1)
    canvas = np.zeros((height, width), np.uint8)
    y = 0
    for p in parts:
        h, w = p.shape
        x = (width - w) // 2
        canvas[y:y + h, x:x + w] = np.maximum(canvas[y:y + h, x:x + w], p)
        y += h - overlap
    return canvas


def worn_image(images: np.ndarray, by_class: dict[int, np.ndarray], label: int,
               rng: np.random.Generator) -> np.ndarray:
    """One synthetic worn shot of class `label` from (N, 28, 28) Fashion-MNIST images."""
    def pick(c: int) -> np.ndarray:
        return _tight(images[rng.choice(by_class[c])])

    garment = _width(pick(label), PART_WIDTH * rng.uniform(0.8, 1.0))
    if label == TROUSER:
        top = _width(pick(TOPS[rng.integers(len(TOPS))]), garment.shape[1] * rng.uniform(1.1, 1.5))
        if rng.random() < 0.5:
            top = top[int(top.shape[0] * rng.uniform(0.0, 0.5)):]  # tucked in / cropped
        parts = [_head(rng, top.shape[1]), top, garment]
    elif label == DRESS:
        parts = [_head(rng, garment.shape[1]), garment]
        if rng.random() < 0.7:
            parts.append(_legs(rng, garment.shape[1] // 2,
                               int(garment.shape[0] * rng.uniform(0.2, 0.6))))
    else:
        trouser = _width(pick(TROUSER), garment.shape[1] * rng.uniform(0.55, 0.8))
        trouser = trouser[:max(2, int(trouser.shape[0] * rng.uniform(0.1, 1.0)))]
        parts = [_head(rng, garment.shape[1]), garment]
        if rng.random() < 0.85:
            parts.append(trouser)
        if rng.random() < 0.3:
            parts = parts[1:]  # the head is cropped out of the shot
    # bright-on-black -> a photo on white -> the same conversion as served photos
    return to_fashion_mnist(Image.fromarray(255 - _stack(parts)))


def worn_images(images: np.ndarray, targets: np.ndarray, count: int,
                seed: int) -> tuple[np.ndarray, np.ndarray]:
    """`count` synthetic worn shots, classes drawn uniformly from WORN_CLASSES:
    (count, 28, 28) uint8 and (count,) int64 labels."""
    rng = np.random.default_rng(seed)
    by_class = {c: np.flatnonzero(targets == c) for c in WORN_CLASSES}
    labels = np.array([WORN_CLASSES[i] for i in rng.integers(len(WORN_CLASSES), size=count)],
                      dtype=np.int64)
    out = np.zeros((count, 28, 28), np.uint8)
    for i, label in enumerate(labels):
        out[i] = worn_image(images, by_class, int(label), rng)
    return out, labels
