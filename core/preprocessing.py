"""Image bytes -> a 28x28 Fashion-MNIST-style image (object bright on black, centred).

Real product photos are converted the way the Fashion-MNIST paper built the dataset (Xiao,
Rasul, Vollgraf 2017, arXiv:1708.07747, section 2): trim the background, resize the longest
edge to 28, sharpen, centre on a 28x28 canvas, negate, grayscale. An image that already looks
like Fashion-MNIST passes through untouched, so the official test set written out as PNG
classifies exactly as offline evaluation does.

Two named preprocessings (a checkpoint records which one its model takes):
- `fmnist-paper-v1`: the paper conversion of the grayscale photo.
- `photo-seg-v1`: the photo is decoded in colour, its background is found and painted white
  (core.segment; catalogue shots on white are left as they are), then the paper conversion.

Everything here is numpy and Pillow; torch appears only in the tensor adapters at the end,
imported when called, so a torch-free worker (onnxruntime) can use this module.
"""

from __future__ import annotations

import io
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
from PIL import Image, ImageFilter, ImageOps, UnidentifiedImageError

from core.segment import on_white

if TYPE_CHECKING:
    import torch

# Recorded in checkpoints: a model is only valid with the preprocessing it was evaluated with.
PREPROCESSING_VERSION = "fmnist-paper-v1"
PHOTO_PREPROCESSING = "photo-seg-v1"

SIZE = 28
DEFAULT_MAX_PIXELS = 40_000_000
# Pillow format names; opening only these keeps the parsers of exotic formats out of reach.
SUPPORTED_FORMATS = ("JPEG", "PNG", "WEBP", "GIF", "BMP", "TIFF")
NOT_AN_IMAGE = "not a recognised image (supported: JPEG, PNG, WebP, GIF, BMP, TIFF)"
# JPEGs decode at 1/2, 1/4 or 1/8 scale but keep >= 112 px (4x the output) on the short side,
# so an object filling a quarter of the frame is still downsampled, never upsampled.
JPEG_DRAFT_SIZE = 4 * SIZE
# Pixel modes with more than 8 bits per channel; Pillow's convert("L") would clip them.
HIGH_BIT_MODES = ("I;16", "I;16B", "I;16L", "I;16N", "I", "F")
ALPHA_MODES = ("RGBA", "RGBa", "LA", "La", "PA")
# Fashion-MNIST backgrounds are black; a border pixel below this counts as background.
DARK = 64
# Trim rows/columns within 5% of the maximum intensity of the background colour (the paper).
TRIM_TOLERANCE = 0.05 * 255
CORNER_PATCH = 3  # corner patches are 3x3 so one noisy pixel cannot flip the background


class ImageDecodeError(ValueError):
    """The bytes are not an image we can decode; the message is meant for the client."""


def decode_image(data: bytes, max_pixels: int = DEFAULT_MAX_PIXELS) -> Image.Image:
    """Decode JPEG/PNG/WebP/GIF (first frame)/BMP/TIFF bytes to an 8-bit "L" image.

    EXIF orientation is applied and transparent areas become white, because product photos are
    shot on white. Large JPEGs come back reduced by 2, 4 or 8 (short side still >= 112 px).
    Raises ImageDecodeError for anything that cannot be decoded.
    """
    return _guarded(lambda: _to_grayscale(_decode(_open(data, max_pixels), "L")), max_pixels)


def decode_photo(data: bytes, max_pixels: int = DEFAULT_MAX_PIXELS) -> Image.Image:
    """decode_image in colour: an "RGB" image (16-bit and float images via grayscale)."""
    return _guarded(lambda: _to_rgb(_decode(_open(data, max_pixels), "RGB")), max_pixels)


def _guarded(decode: Callable[[], Image.Image], max_pixels: int) -> Image.Image:
    """Run a decoding step, turning every way it can fail into ImageDecodeError."""
    try:
        return decode()
    except ImageDecodeError:
        raise
    except UnidentifiedImageError as exc:
        raise ImageDecodeError(NOT_AN_IMAGE) from exc
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        # Pillow's own guard fires in Image.open for sizes far above any sane max_pixels.
        raise ImageDecodeError(f"image has too many pixels (above the {max_pixels} limit)") from exc
    except Exception as exc:
        # Pillow's decoders raise many types on hostile input (OSError, SyntaxError,
        # struct.error, IndexError, ...); all of them mean "this file cannot be decoded".
        raise ImageDecodeError(f"corrupt or truncated image ({type(exc).__name__}: {exc})") from exc


def _open(data: bytes, max_pixels: int) -> Image.Image:
    """The image, lazily: only its header is read, so the pixel limit costs nothing."""
    if not data:
        raise ImageDecodeError("empty file")
    img = Image.open(io.BytesIO(data), formats=SUPPORTED_FORMATS)
    pixels = img.width * img.height
    if pixels > max_pixels:
        raise ImageDecodeError(f"image has {pixels} pixels, above the {max_pixels} limit")
    return img


def _decode(img: Image.Image, draft_mode: str) -> Image.Image:
    """Load the pixels of an opened image, upright; JPEGs in `draft_mode` ("L" or "RGB")."""
    if img.format in ("JPEG", "MPO"):  # MPO: the multi-picture JPEG many phone cameras write
        img.draft(draft_mode, (JPEG_DRAFT_SIZE, JPEG_DRAFT_SIZE))  # downsampled for free
    img.load()  # GIF/TIFF: the first frame
    ImageOps.exif_transpose(img, in_place=True)  # no copy of the (usual) unrotated image
    return img


def _to_rgb(img: Image.Image) -> Image.Image:
    if img.mode in HIGH_BIT_MODES:
        return _to_grayscale(img).convert("RGB")
    if img.mode in ALPHA_MODES or "transparency" in img.info:
        white = Image.new("RGBA", img.size, (255, 255, 255, 255))
        img = Image.alpha_composite(white, img.convert("RGBA"))
    return img.convert("RGB")


def _to_grayscale(img: Image.Image) -> Image.Image:
    if img.mode in HIGH_BIT_MODES:
        values = np.asarray(img, dtype=np.float64)
        if img.mode.startswith("I;16"):
            values = values / 257  # 65535 -> 255
        else:
            # 32-bit int and float images have no agreed white point; stretch their range.
            low, high = values.min(), values.max()
            values = (values - low) * (255 / (high - low)) if high > low else np.zeros_like(values)
        return Image.fromarray(np.rint(values).astype(np.uint8))  # 2-D uint8: "L"
    if img.mode in ALPHA_MODES or "transparency" in img.info:
        white = Image.new("RGBA", img.size, (255, 255, 255, 255))
        img = Image.alpha_composite(white, img.convert("RGBA"))
    return img.convert("L")


def _corners(pixels: np.ndarray, k: int) -> np.ndarray:
    return np.concatenate(
        [p.ravel() for p in (pixels[:k, :k], pixels[:k, -k:], pixels[-k:, :k], pixels[-k:, -k:])]
    )


def looks_like_fashion_mnist(img: Image.Image) -> bool:
    """True for a 28x28 grayscale image on a dark background, which is used as is.

    Clothing that fills the frame (trousers, bags) covers up to ~60% of the border and a
    corner or two in the real dataset, so no single border statistic works; both of these hold
    for all 70,000 Fashion-MNIST images and fail for a photo on white:
    the corners are mostly dark and at least a quarter of the border is dark.
    """
    if img.size != (SIZE, SIZE) or img.mode != "L":
        return False
    pixels = np.asarray(img)
    corners = sorted(int(v) for v in (pixels[0, 0], pixels[0, -1], pixels[-1, 0], pixels[-1, -1]))
    if (corners[1] + corners[2]) / 2 >= 128:  # their median: called per image, numpy's is slow
        return False
    border = np.concatenate([pixels[0], pixels[-1], pixels[1:-1, 0], pixels[1:-1, -1]])
    return bool(np.count_nonzero(border < DARK) >= 0.25 * border.size)


def to_fashion_mnist(img: Image.Image) -> np.ndarray:
    """Convert an "L" photo as the paper did; returns (28, 28) uint8, object bright on black."""
    pixels = np.asarray(img)
    # The background is whatever the corners show; light (product shot) or dark, not assumed.
    background = int(np.median(_corners(pixels, CORNER_PATCH)))
    light_background = background >= 128

    # (1) trim rows and columns whose pixels are all within 5% of the background colour
    foreground = np.abs(pixels.astype(np.int16) - background) > TRIM_TOLERANCE
    rows, cols = np.flatnonzero(foreground.any(axis=1)), np.flatnonzero(foreground.any(axis=0))
    canvas = Image.new("L", (SIZE, SIZE), background)
    if rows.size:  # a uniform image has nothing to trim: it stays an empty canvas
        obj = img.crop((cols[0], rows[0], cols[-1] + 1, rows[-1] + 1))
        # (2) longest edge to 28 px; reducing_gap box-reduces first, so big crops stay fast
        scale = SIZE / max(obj.size)
        size = (max(1, round(obj.width * scale)), max(1, round(obj.height * scale)))
        obj = obj.resize(size, Image.Resampling.LANCZOS, reducing_gap=3.0)
        # (3) Gaussian unsharp mask, radius (sigma) 1
        obj = obj.filter(ImageFilter.UnsharpMask(radius=1, percent=100, threshold=3))
        # (4) centre on the 28x28 canvas, padded with the background colour
        canvas.paste(obj, ((SIZE - obj.width) // 2, (SIZE - obj.height) // 2))
    # (5) negate so the object ends bright on black, (6) 8-bit grayscale
    result = np.array(canvas, dtype=np.uint8)
    return 255 - result if light_background else result


def photo_to_fashion_mnist(img: Image.Image) -> np.ndarray:
    """`photo-seg-v1`: background painted white (core.segment), then the paper conversion."""
    return to_fashion_mnist(on_white(img))


@dataclass(frozen=True)
class Preprocessing:
    """A named conversion of a photo (not a Fashion-MNIST image) to (28, 28) uint8."""

    name: str
    mode: str  # the mode photos are decoded in: "L" or "RGB"
    convert: Callable[[Image.Image], np.ndarray]


PREPROCESSINGS: dict[str, Preprocessing] = {
    PREPROCESSING_VERSION: Preprocessing(PREPROCESSING_VERSION, "L", to_fashion_mnist),
    PHOTO_PREPROCESSING: Preprocessing(PHOTO_PREPROCESSING, "RGB", photo_to_fashion_mnist),
}


def get_preprocessing(name: str) -> Preprocessing:
    try:
        return PREPROCESSINGS[name]
    except KeyError:
        raise ValueError(f"Unknown preprocessing {name!r}; choose one of:"
                         f" {', '.join(PREPROCESSINGS)}") from None


def route_and_preprocess(
    data: bytes, max_pixels: int = DEFAULT_MAX_PIXELS, preprocessing: str = PREPROCESSING_VERSION
) -> tuple[bool, np.ndarray]:
    """Decode once; (True, the image as is) for a Fashion-MNIST image, else (False, the photo
    converted by `preprocessing`). Raises ImageDecodeError.

    Only a 28x28 image can be Fashion-MNIST; it is decoded in grayscale exactly as
    `fmnist-paper-v1` decodes it (a 28x28 image that is not Fashion-MNIST is converted from
    that grayscale decoding too). Larger images are decoded in the preprocessing's own mode.
    """
    spec = get_preprocessing(preprocessing)

    def decode() -> Image.Image:
        img = _open(data, max_pixels)
        mode = "L" if img.size == (SIZE, SIZE) else spec.mode
        img = _decode(img, mode)
        return _to_grayscale(img) if mode == "L" else _to_rgb(img)

    img = _guarded(decode, max_pixels)
    if looks_like_fashion_mnist(img):
        return True, np.array(img, dtype=np.uint8)  # byte-for-byte what the dataset holds
    return False, spec.convert(img)


def preprocess(
    data: bytes, max_pixels: int = DEFAULT_MAX_PIXELS, preprocessing: str = PREPROCESSING_VERSION
) -> np.ndarray:
    """Image bytes -> (28, 28) uint8, object bright on black; raises ImageDecodeError."""
    return route_and_preprocess(data, max_pixels, preprocessing)[1]


def preprocess_photo(data: bytes, max_pixels: int = DEFAULT_MAX_PIXELS) -> np.ndarray:
    """preprocess with `photo-seg-v1`."""
    return preprocess(data, max_pixels, PHOTO_PREPROCESSING)


def to_tensor(array: np.ndarray) -> torch.Tensor:
    """(28, 28) uint8 -> (1, 28, 28) float32 in [0, 1], as training feeds the model."""
    import torch

    if array.shape != (SIZE, SIZE) or array.dtype != np.uint8:
        raise ValueError(f"expected a (28, 28) uint8 array, got {array.shape} {array.dtype}")
    return torch.tensor(array, dtype=torch.float32).div_(255).unsqueeze_(0)


def stack_arrays(arrays: Sequence[np.ndarray]) -> torch.Tensor:
    """(28, 28) uint8 arrays -> (N, 1, 28, 28) float32 in [0, 1], one conversion for all:
    per-image tensor ops cost more than the decoding here. The same values as to_tensor."""
    import torch

    if not arrays:
        return torch.empty(0, 1, SIZE, SIZE)
    return torch.from_numpy(np.stack(arrays)).unsqueeze(1).float().div_(255)


def preprocess_batch(
    items: Sequence[bytes], max_pixels: int = DEFAULT_MAX_PIXELS,
    preprocessing: str = PREPROCESSING_VERSION,
) -> tuple[torch.Tensor, list[str | None]]:
    """Preprocess many images; a bad item never breaks the batch.

    Returns the decoded images in input order, (N_ok, 1, 28, 28) float32 in [0, 1], and one
    entry per input: None when it decoded, else the error message.
    """
    get_preprocessing(preprocessing)  # an unknown name fails here, not once per item
    arrays: list[np.ndarray] = []
    errors: list[str | None] = []
    for data in items:
        try:
            arrays.append(preprocess(data, max_pixels, preprocessing))
            errors.append(None)
        except ImageDecodeError as exc:
            errors.append(str(exc))
    return stack_arrays(arrays), errors
