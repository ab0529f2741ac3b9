"""Foreground segmentation for product photos, in numpy and Pillow only (no torch, no OpenCV).

Catalogue shots sit on a clean light background, which the Fashion-MNIST paper conversion
trims by itself. Photos taken at home (a shirt on a bed, shoes on a tiled floor) do not: the
whole textured background would end up in the 28x28 image. For those, a two-colour-model
segmentation in the spirit of GrabCut (without its graph cut): background colours come from
the image border, object colours from the centre; each pixel goes to the nearer model, the
object model is refitted from the pixels it won, three times. Then a median filter, the
components that matter, holes filled. All on a copy at most WORK px on its longest side, so
it costs ~10-20 ms a photo.
"""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageFilter

WORK = 96  # px, longest side of the working copy
BAND = 0.04  # border band, as a fraction of the longest side, that samples the background
CENTRE = 0.5  # the centre box (this share of each side) seeds the object's colours
CLUSTERS = 4  # colours per model (floor tiles, a bed and a wall... / a print on a shirt)
MIN_BACKGROUND_WEIGHT = 0.05  # band colours rarer than this are the object touching the edge
MARGIN = 10.0  # RGB distance: a pixel is object only when nearer the object by this much
ROUNDS = 3  # object-model refits
OBJECT_SAMPLE = 1500  # object pixels the object model is fitted on, at most
KEEP_COMPONENT = 0.1  # components smaller than this share of the largest are specks
MIN_OBJECT = 0.03  # a mask covering less than this share of the image is no object at all
# A catalogue shot: this share of the band lies within UNIFORM_TOLERANCE of its median, and
# the median is at least LIGHT. Such photos skip segmentation (the paper trim is exact there).
UNIFORM_SHARE = 0.85
UNIFORM_TOLERANCE = 24
LIGHT = 180


def _band(a: np.ndarray, width: int) -> np.ndarray:
    """The pixels of a `width`-pixel band along the four edges of `a`, (K, ...) flattened."""
    tail = a.shape[2:]
    return np.concatenate([a[:width].reshape(-1, *tail), a[-width:].reshape(-1, *tail),
                           a[:, :width].reshape(-1, *tail), a[:, -width:].reshape(-1, *tail)])


def _working_copy(img: Image.Image) -> Image.Image:
    small = img.copy()
    small.thumbnail((WORK, WORK), Image.Resampling.BOX)
    return small


def is_catalogue_shot(img: Image.Image) -> bool:
    """A uniform, light border: the product was shot on white (or near it)."""
    a = np.asarray(_working_copy(img).convert("L"), dtype=np.int16)
    band = _band(a, max(2, round(BAND * max(a.shape))))
    median = int(np.median(band))
    near = np.count_nonzero(np.abs(band - median) <= UNIFORM_TOLERANCE)
    return median >= LIGHT and near >= UNIFORM_SHARE * band.size


def kmeans(points: np.ndarray, k: int, iterations: int = 8) -> tuple[np.ndarray, np.ndarray]:
    """Deterministic k-means of (P, 3) colours: centres seeded at brightness quantiles.
    Returns the centres (k, 3) and the share of points nearest each."""
    order = np.argsort(points.sum(1), kind="stable")
    centres = points[order[((np.arange(k) + 0.5) / k * len(points)).astype(int)]].copy()
    for _ in range(iterations):
        nearest = ((points[:, None, :] - centres[None]) ** 2).sum(2).argmin(1)
        for j in range(k):
            members = points[nearest == j]
            if len(members):
                centres[j] = members.mean(0)
    return centres, np.bincount(nearest, minlength=k) / len(points)


def _components(mask: np.ndarray) -> np.ndarray:
    """4-connected component labels (0 = background), by min-label propagation."""
    h, w = mask.shape
    big = h * w + 1
    labels = np.where(mask, np.arange(1, h * w + 1).reshape(h, w), 0)
    while True:
        spread = np.where(mask, labels, big)
        low = spread.copy()
        low[1:] = np.minimum(low[1:], spread[:-1])
        low[:-1] = np.minimum(low[:-1], spread[1:])
        low[:, 1:] = np.minimum(low[:, 1:], spread[:, :-1])
        low[:, :-1] = np.minimum(low[:, :-1], spread[:, 1:])
        low = np.where(mask, low, 0)
        if np.array_equal(low, labels):
            return labels
        labels = low


def _fill_holes(mask: np.ndarray) -> np.ndarray:
    """Background is what the border reaches without crossing the mask; the rest is object."""
    free = ~mask
    reached = np.zeros_like(mask)
    reached[0], reached[-1] = free[0], free[-1]
    reached[:, 0] |= free[:, 0]
    reached[:, -1] |= free[:, -1]
    while True:
        grown = reached.copy()
        grown[1:] |= reached[:-1]
        grown[:-1] |= reached[1:]
        grown[:, 1:] |= reached[:, :-1]
        grown[:, :-1] |= reached[:, 1:]
        grown &= free
        if np.array_equal(grown, reached):
            return ~reached
        reached = grown


def _nearest(a: np.ndarray, centres: np.ndarray) -> np.ndarray:
    """(h, w) distance of each pixel of (h, w, 3) `a` to the nearest of (k, 3) `centres`."""
    return np.sqrt(((a[:, :, None, :] - centres[None, None]) ** 2).sum(3)).min(2)


def foreground_mask(img: Image.Image) -> np.ndarray | None:
    """(h, w) bool at the working size (longest side WORK), True on the object; None when
    nothing stands out from the background."""
    small = _working_copy(img.convert("RGB")).filter(ImageFilter.BoxBlur(1))
    a = np.asarray(small, dtype=np.float32)  # (h, w, 3)
    h, w = a.shape[:2]
    band = np.zeros((h, w), bool)
    width = max(2, round(BAND * max(h, w)))
    band[:width], band[-width:], band[:, :width], band[:, -width:] = True, True, True, True
    centre = np.zeros((h, w), bool)
    ch, cw = int(h * (1 - CENTRE) / 2), int(w * (1 - CENTRE) / 2)
    centre[ch:h - ch, cw:w - cw] = True
    background, weights = kmeans(a[band], CLUSTERS)
    background = background[weights >= min(MIN_BACKGROUND_WEIGHT, weights.max())]
    to_background = _nearest(a, background)
    obj = centre
    for _ in range(ROUNDS):
        seeds = a[obj & ~band] if np.count_nonzero(obj & ~band) > 10 else a[centre]
        objects, _ = kmeans(seeds[::max(1, len(seeds) // OBJECT_SAMPLE)], CLUSTERS)
        obj = (_nearest(a, objects) + MARGIN < to_background) & ~band
    smooth = Image.fromarray(obj.astype(np.uint8) * 255).filter(ImageFilter.MedianFilter(5))
    fg = np.asarray(smooth) > 127
    if np.count_nonzero(fg) < MIN_OBJECT * fg.size:
        return None
    labels = _components(fg)
    ids, sizes = np.unique(labels[labels > 0], return_counts=True)
    fg = np.isin(labels, ids[sizes >= KEEP_COMPONENT * sizes.max()])
    return _fill_holes(fg)


def on_white(img: Image.Image) -> Image.Image:
    """The photo in grayscale ("L") with everything but its object painted white, the way a
    catalogue shot looks; a catalogue shot (or a photo with no object found) is unchanged."""
    gray = img.convert("L")
    if is_catalogue_shot(img):
        return gray
    mask = foreground_mask(img)
    if mask is None:
        return gray
    soft = Image.fromarray(mask.astype(np.uint8) * 255).resize(img.size, Image.Resampling.BILINEAR)
    return Image.composite(gray, Image.new("L", img.size, 255), soft)
