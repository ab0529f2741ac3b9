"""Uploads -> job items: (metadata, image bytes or None). Blocking file I/O: call these from
`def` routes or a threadpool, never on the event loop.

Torch stays out of the API process, so the image check here is Pillow's header parse only;
the workers decode for real (core.preprocessing) and report per-item errors.
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from typing import Any

from PIL import Image
from starlette.datastructures import UploadFile

from api.archives import ArchiveLimits, read_members, sniff
from api.errors import ApiError
from api.manifests import parse_manifest
from core.settings import Settings

# Same list as core.preprocessing.SUPPORTED_FORMATS (that module imports torch).
SUPPORTED_FORMATS = ("JPEG", "PNG", "WEBP", "GIF", "BMP", "TIFF")

Item = tuple[dict[str, Any], bytes | None]


def upload_size(upload: UploadFile) -> int:
    if upload.size is not None:
        return upload.size
    upload.file.seek(0, io.SEEK_END)
    size = upload.file.tell()
    upload.file.seek(0)
    return size


def read_image_part(upload: UploadFile, settings: Settings) -> bytes:
    """A part that must be one image (POST /v1/classify): size and header checked."""
    if upload_size(upload) > settings.max_image_bytes:
        raise ApiError(413, f"{upload.filename or 'file'} is larger than"
                            f" {settings.max_image_bytes} bytes")
    data = upload.file.read()
    try:
        with Image.open(io.BytesIO(data), formats=SUPPORTED_FORMATS) as img:  # header only
            pixels = img.width * img.height
    except Exception as exc:  # Pillow raises many types on non-images; all mean "not one"
        raise ApiError(415, f"{upload.filename or 'file'} is not a supported image"
                            f" ({', '.join(SUPPORTED_FORMATS)})") from exc
    if pixels > settings.max_image_pixels:
        raise ApiError(413, f"image has {pixels} pixels; the limit is"
                            f" {settings.max_image_pixels}")
    return data


def items_from_files(files: list[UploadFile], settings: Settings) -> Iterator[Item]:
    if len(files) > settings.max_items_per_job:
        raise ApiError(413, f"{len(files)} files; the limit is {settings.max_items_per_job}",
                       "too_many_items")
    for upload in files:
        if upload_size(upload) > settings.max_image_bytes:
            raise ApiError(413, f"{upload.filename or 'file'} is larger than"
                                f" {settings.max_image_bytes} bytes")
    for upload in files:
        upload.file.seek(0)
        yield {"item_id": None, "filename": upload.filename}, upload.file.read()


def items_from_archive(upload: UploadFile, settings: Settings) -> Iterator[Item]:
    head = upload.file.read(512)
    upload.file.seek(0)
    kind = sniff(head)
    if kind is None:
        raise ApiError(415, "archive must be a .zip, .tar or .tar.gz file")
    limits = ArchiveLimits(settings.max_items_per_job, settings.max_image_bytes,
                           settings.max_archive_uncompressed_bytes)
    count = 0
    for name, data, error in read_members(upload.file, kind, limits):
        count += 1
        meta: dict[str, Any] = {"item_id": None, "filename": name}
        if error:
            meta["error"] = error
        yield meta, data
    if not count:
        raise ApiError(422, "the archive holds no files", "invalid_archive")


def items_from_manifest(upload: UploadFile, settings: Settings) -> Iterator[Item]:
    items = parse_manifest(upload.file.read(), upload.filename, settings.max_items_per_job)
    for item in items:
        yield {"item_id": item.item_id, "filename": None, "url": item.url}, None
