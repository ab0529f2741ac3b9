"""Synthetic product-like photos for dataset tests: a dark shape on a white background (what
real catalogue photos look like), varied in size and position, and zips of class folders."""

from __future__ import annotations

import io
import random
import zipfile

from PIL import Image, ImageDraw

SHAPES = ("circle", "square", "triangle")


def shape_png(kind: str, seed: int, size: int = 64) -> bytes:
    rng = random.Random(f"{kind}-{seed}")
    img = Image.new("RGB", (size, size), "white")
    draw = ImageDraw.Draw(img)
    side = rng.randint(size // 2, size - 12)
    x0, y0 = rng.randint(2, size - side - 2), rng.randint(2, size - side - 2)
    shade = rng.randint(0, 60)
    color = (shade, shade, shade + rng.randint(0, 40))
    box = (x0, y0, x0 + side, y0 + side)
    if kind == "circle":
        draw.ellipse(box, fill=color)
    elif kind == "square":
        draw.rectangle(box, fill=color)
    else:
        draw.polygon([(x0, y0 + side), (x0 + side, y0 + side), (x0 + side // 2, y0)], fill=color)
    buffer = io.BytesIO()
    img.save(buffer, "PNG")
    return buffer.getvalue()


def zip_bytes(members: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return buffer.getvalue()


def shapes_members(per_class: int = 10, classes: tuple[str, ...] = SHAPES,
                   prefix: str = "") -> dict[str, bytes]:
    return {f"{prefix}{kind}/{kind}-{i}.png": shape_png(kind, i)
            for kind in classes for i in range(per_class)}
