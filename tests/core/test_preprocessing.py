import io
import os
import struct
import time
import zlib

import numpy as np
import pytest
import torch
from PIL import Image, ImageDraw

from core.data import load_fashion_mnist
from core.preprocessing import (
    ImageDecodeError,
    decode_image,
    looks_like_fashion_mnist,
    preprocess,
    preprocess_batch,
    to_tensor,
)
from core.settings import Settings

CANVAS = (600, 800)  # (width, height) of a typical product photo
TALL_BOX = (40, 60, 240, 460)  # off-centre object, 200 x 400 px: ends 14 x 28 px


def encode(img: Image.Image, fmt: str, **params) -> bytes:
    buffer = io.BytesIO()
    img.save(buffer, fmt, **params)
    return buffer.getvalue()


def photo(background=(255, 255, 255), colour=(60, 60, 60), mode="RGB", box=TALL_BOX):
    img = Image.new(mode, CANVAS, background)
    ImageDraw.Draw(img).ellipse(box, fill=colour)
    return img


def assert_bright_tall_object_centred(out: np.ndarray, background_max: int = 8) -> None:
    assert out.shape == (28, 28) and out.dtype == np.uint8
    corners = np.concatenate([out[:2, :2], out[:2, -2:], out[-2:, :2], out[-2:, -2:]])
    assert corners.max() <= background_max
    assert out[12:16, 12:16].min() > 128
    weights = out.astype(np.float64)
    rows, cols = np.indices(out.shape)
    centre = ((rows * weights).sum() / weights.sum(), (cols * weights).sum() / weights.sum())
    assert centre == pytest.approx((13.5, 13.5), abs=1.0)
    ys, xs = np.nonzero(out > 64)
    assert ys.max() - ys.min() + 1 >= 26  # longest edge fills the frame
    assert 11 <= xs.max() - xs.min() + 1 <= 17  # aspect ratio kept (1:2)


@pytest.fixture(scope="module")
def fashion_mnist_test() -> np.ndarray:
    # Loaded the way offline evaluation loads it: (10000, 28, 28) uint8
    return load_fashion_mnist(Settings().fashion_mnist_dir, "test").images.numpy()


def test_fashion_mnist_test_set_passes_through_exactly(fashion_mnist_test):
    for index, image in enumerate(fashion_mnist_test):
        out = preprocess(encode(Image.fromarray(image), "PNG"))
        assert np.array_equal(out, image), f"test image {index} was altered"


def test_rgb_fashion_mnist_passes_through_exactly(fashion_mnist_test):
    for image in fashion_mnist_test[:50]:
        out = preprocess(encode(Image.fromarray(image).convert("RGB"), "PNG"))
        assert np.array_equal(out, image)


def test_jpeg_fashion_mnist_is_not_reprocessed(fashion_mnist_test):
    for image in fashion_mnist_test[:200]:
        data = encode(Image.fromarray(image), "JPEG", quality=75)
        decoded = Image.open(io.BytesIO(data))
        assert looks_like_fashion_mnist(decoded)
        assert np.array_equal(preprocess(data), np.asarray(decoded))


def test_white_thumbnail_is_not_taken_for_fashion_mnist():
    img = Image.new("L", (28, 28), 255)
    ImageDraw.Draw(img).rectangle((8, 0, 19, 27), fill=40)  # dark object touching two edges
    assert not looks_like_fashion_mnist(img)
    assert preprocess(encode(img, "PNG"))[0, 0] == 0  # negated: background black


@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "WEBP", "GIF", "BMP", "TIFF"])
def test_dark_object_on_white_photo(fmt):
    assert_bright_tall_object_centred(preprocess(encode(photo(), fmt)))


def test_large_jpeg_is_decoded_reduced():
    # Draft mode: the JPEG decoder scales by 1/4 and skips colour; 112 px (4 x 28) remain.
    assert decode_image(encode(photo(), "JPEG")).size == (150, 200)
    phone = encode(photo(), "MPO", save_all=True, append_images=[Image.new("RGB", CANVAS)])
    assert decode_image(phone).size == (150, 200)
    assert_bright_tall_object_centred(preprocess(phone))  # first picture, not the black one


def test_light_object_on_dark_photo_is_not_negated():
    img = photo(background=(15, 15, 15), colour=(210, 200, 190))
    out = preprocess(encode(img, "JPEG", quality=90))
    assert_bright_tall_object_centred(out, background_max=20)
    assert out[0, 0] >= 10  # the dark background kept its level: nothing was negated


@pytest.mark.parametrize(
    "make, fmt",
    [
        (lambda img: img.convert("P", palette=Image.Palette.ADAPTIVE), "PNG"),
        (lambda img: img.convert("L"), "PNG"),
        (lambda img: img.convert("1", dither=Image.Dither.NONE), "PNG"),
        (lambda img: img.convert("1", dither=Image.Dither.NONE), "BMP"),
        (lambda img: img.convert("CMYK"), "JPEG"),
        (lambda img: img.convert("CMYK"), "TIFF"),
        (lambda img: Image.fromarray(np.asarray(img.convert("L")).astype(np.uint16) * 257), "PNG"),
        (lambda img: Image.fromarray(np.asarray(img.convert("L")).astype(np.uint16) * 257), "TIFF"),
        (lambda img: Image.fromarray(np.asarray(img.convert("L")).astype(np.int32)), "TIFF"),
        (lambda img: Image.fromarray(np.asarray(img.convert("L")) / np.float32(255)), "TIFF"),
    ],
    ids=["P", "L", "1-png", "1-bmp", "CMYK-jpeg", "CMYK-tiff", "I16-png", "I16-tiff", "I", "F"],
)
def test_pixel_modes(make, fmt):
    img = make(photo())
    data = encode(img, fmt)
    assert Image.open(io.BytesIO(data)).mode == img.mode  # the file really has that mode
    assert_bright_tall_object_centred(preprocess(data))


def test_16_bit_is_scaled_not_clipped():
    img = Image.fromarray(np.array([[0, 32896, 65535]], dtype=np.uint16))
    assert img.mode == "I;16"
    assert np.asarray(decode_image(encode(img, "PNG"))).tolist() == [[0, 128, 255]]


def transparent(mode: str) -> Image.Image:
    # Transparent pixels are black so that ignoring the alpha channel would show.
    if mode == "RGBA":
        return photo(background=(0, 0, 0, 0), colour=(60, 60, 60, 255), mode="RGBA")
    if mode == "LA":
        return photo(background=(0, 0), colour=(60, 255), mode="LA")
    img = photo(background=0, colour=1, mode="P")
    img.putpalette([0, 0, 0, 60, 60, 60])
    img.info["transparency"] = 0
    return img


@pytest.mark.parametrize(
    "mode, fmt", [("RGBA", "PNG"), ("RGBA", "WEBP"), ("LA", "PNG"), ("P", "PNG"), ("P", "GIF")]
)
def test_transparent_background_is_white(mode, fmt):
    data = encode(transparent(mode), fmt)
    assert decode_image(data).getpixel((0, 0)) == 255
    assert_bright_tall_object_centred(preprocess(data))


def test_gif_uses_first_frame():
    tall = photo().convert("P", palette=Image.Palette.ADAPTIVE)
    wide = photo(box=(40, 60, 440, 260)).convert("P", palette=Image.Palette.ADAPTIVE)
    data = encode(tall, "GIF", save_all=True, append_images=[wide])
    assert Image.open(io.BytesIO(data)).n_frames == 2
    assert_bright_tall_object_centred(preprocess(data))


def test_exif_orientation_is_applied():
    img = Image.new("RGB", (300, 200), "white")
    ImageDraw.Draw(img).rectangle((10, 10, 110, 40), fill=(40, 40, 40))  # wide, top-left
    exif = img.getexif()
    exif[0x0112] = 6  # display rotated 90 degrees clockwise
    data = encode(img, "JPEG", exif=exif, quality=95)

    upright = np.asarray(decode_image(data))
    assert upright.shape == (300, 200)  # (rows, cols): portrait once rotated
    ys, xs = np.nonzero(upright < 128)
    assert ys.max() < 150 and xs.min() > 100  # top-left went to top-right
    out = preprocess(data)
    ys, xs = np.nonzero(out > 64)
    assert ys.max() - ys.min() > 2 * (xs.max() - xs.min())  # the wide bar now stands tall


@pytest.mark.parametrize("size, value", [((600, 800), 255), ((600, 800), 0), ((1, 1), 128)])
def test_uniform_image_gives_empty_canvas(size, value):
    out = preprocess(encode(Image.new("L", size, value), "PNG"))
    assert out.shape == (28, 28) and out.dtype == np.uint8
    assert out.min() == out.max() <= 127


def test_thin_line_keeps_one_pixel():
    img = Image.new("L", CANVAS, 255)
    ImageDraw.Draw(img).line((50, 300, 550, 300), fill=0, width=1)
    out = preprocess(encode(img, "PNG"))
    assert out.shape == (28, 28)
    assert out[13:15].max() > 64 and out[:10].max() == 0


def png_header(width: int, height: int) -> bytes:
    """A tiny PNG that declares a huge 1-bit image (a decompression bomb's header)."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        crc = struct.pack(">I", zlib.crc32(kind + body))
        return struct.pack(">I", len(body)) + kind + body + crc

    ihdr = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", ihdr)
        + chunk(b"IDAT", zlib.compress(b"\x00" * 64))
        + chunk(b"IEND", b"")
    )


@pytest.mark.parametrize(
    "data, max_pixels, message",
    [
        (png_header(8000, 8000), 40_000_000, "image has 64000000 pixels, above the 40000000 limit"),
        (png_header(20000, 20000), 40_000_000, "too many pixels"),
        (encode(photo(), "JPEG"), 100_000, "image has 480000 pixels, above the 100000 limit"),
    ],
)
def test_decompression_bomb_is_refused_quickly(data, max_pixels, message):
    start = time.perf_counter()
    with pytest.raises(ImageDecodeError, match=message):
        preprocess(data, max_pixels=max_pixels)
    assert time.perf_counter() - start < 5


def truncated(fmt: str) -> bytes:
    noise = np.random.default_rng(0).integers(0, 256, (200, 200, 3), dtype=np.uint8)
    data = encode(Image.fromarray(noise), fmt)
    return data[: len(data) // 2]


@pytest.mark.parametrize(
    "data, message",
    [
        (b"", "empty file"),
        (os.urandom(1000), "not a recognised image"),
        (b"hello, world\n" * 20, "not a recognised image"),
        (encode(Image.new("RGB", (32, 32)), "ICO"), "not a recognised image"),
        (truncated("JPEG"), "corrupt or truncated image"),
        (truncated("PNG"), "corrupt or truncated image"),
        (png_header(100, 100), "corrupt or truncated image"),
    ],
    ids=["empty", "random", "text", "ico", "truncated-jpeg", "truncated-png", "no-pixels"],
)
def test_undecodable_bytes_raise_image_decode_error(data, message):
    with pytest.raises(ImageDecodeError, match=message):
        preprocess(data)


def test_batch_keeps_order_and_reports_errors_per_item(fashion_mnist_test):
    good = [encode(photo(), "JPEG"), encode(Image.fromarray(fashion_mnist_test[0]), "PNG")]
    items = [b"", good[0], b"not an image", good[1], truncated("PNG")]

    batch, errors = preprocess_batch(items)

    assert batch.shape == (2, 1, 28, 28) and batch.dtype == torch.float32
    assert [error is None for error in errors] == [False, True, False, True, False]
    assert errors[0] == "empty file"
    for row, data in zip(batch, good, strict=True):  # batch path == single-image path
        assert torch.equal(row, to_tensor(preprocess(data)))
    assert 0.0 <= batch.min() and batch.max() <= 1.0


def test_batch_of_only_bad_items_is_empty():
    batch, errors = preprocess_batch([b"", b"x"])
    assert batch.shape == (0, 1, 28, 28)
    assert all(errors)


def test_to_tensor_matches_training_scaling(fashion_mnist_test):
    image = fashion_mnist_test[0]
    expected = torch.from_numpy(image).unsqueeze(0).float().div_(255)  # as core.training does
    assert torch.equal(to_tensor(image), expected)
    with pytest.raises(ValueError, match="expected a"):
        to_tensor(np.zeros((28, 28), dtype=np.float32))
