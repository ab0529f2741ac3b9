"""Validating an uploaded dataset: a zip of class folders (`<class>/<image>`, optionally inside
one wrapper folder). Blocking (archive reads, image decoding): call from `def` routes.

The archive is read with api.archives (entry count, total and per-member sizes counted as
read; nothing is extracted to disk). Every image is decoded in full with
Pillow under the pixel limit: the API has no torch, so core.preprocessing is not available
here, but a file Pillow decodes is one the worker's preprocessing accepts. Any unusable file
refuses the whole dataset, and the answer lists them.
"""

from __future__ import annotations

import io
from collections import Counter
from dataclasses import dataclass

from fastapi import UploadFile
from PIL import Image

from api.archives import ArchiveLimits, read_members, sniff
from api.errors import ApiError
from api.uploads import SUPPORTED_FORMATS
from core.settings import Settings

MAX_CLASSES = 1000
MAX_LABEL_CHARS = 100
MAX_LISTED = 20  # problems named in one error message


@dataclass(frozen=True)
class ValidDataset:
    labels: list[str]  # sorted, as core.data.load_image_folder orders class folders
    images: list[tuple[int, bytes]]  # (label index, image bytes)


def invalid(message: str) -> ApiError:
    return ApiError(422, message, "invalid_dataset")


def read_dataset_zip(upload: UploadFile, settings: Settings) -> ValidDataset:
    head = upload.file.read(512)
    upload.file.seek(0)
    if sniff(head) != "zip":
        raise ApiError(415, "a dataset must be a .zip of class folders (<class>/<image>)")
    limits = ArchiveLimits(settings.max_items_per_job, settings.max_image_bytes,
                           settings.dataset_max_bytes)
    members = []
    for name, data, error in read_members(upload.file, "zip", limits):
        parts = safe_parts(name)
        if not any(p.startswith(".") for p in parts):  # .DS_Store and the like: not data
            members.append((parts, data, error))
    if not members:
        raise invalid("the archive holds no images")
    members = strip_wrapper(members)

    problems: list[str] = []
    found: list[tuple[str, bytes]] = []
    for parts, data, error in members:
        if len(parts) < 2:
            error = "not inside a class folder"
        elif data is not None and error is None:
            error = decode_problem(data, settings)
        if error or data is None:
            problems.append(f"{'/'.join(parts)}: {error}")
        else:
            found.append((parts[0], data))
    if problems:
        listed = "; ".join(problems[:MAX_LISTED])
        more = f"; and {len(problems) - MAX_LISTED} more" if len(problems) > MAX_LISTED else ""
        raise invalid(f"{len(problems)} unusable file(s): {listed}{more}")
    return ValidDataset(*check_classes(found, settings.dataset_min_images_per_class))


def safe_parts(name: str) -> list[str]:
    """The member's path segments; a name that could escape a folder refuses the archive
    (nothing is extracted here, but such a zip is hostile or broken either way)."""
    parts = name.split("/")
    if (name.startswith("/") or "\\" in name or "\x00" in name or ":" in parts[0]
            or any(p in ("", ".", "..") for p in parts)):
        raise invalid(f"unsafe path in the archive: {name!r}")
    return parts


def strip_wrapper(members: list) -> list:
    """`shapes/circle/a.png` -> `circle/a.png` when every member sits in one top folder."""
    tops = {parts[0] for parts, _, _ in members}
    if len(tops) == 1 and all(len(parts) >= 3 for parts, _, _ in members):
        return [(parts[1:], data, error) for parts, data, error in members]
    return members


def decode_problem(data: bytes, settings: Settings) -> str | None:
    try:
        with Image.open(io.BytesIO(data), formats=SUPPORTED_FORMATS) as img:
            pixels = img.width * img.height
            if pixels > settings.max_image_pixels:
                return f"image has {pixels} pixels; the limit is {settings.max_image_pixels}"
            img.load()  # the whole stream: a truncated or corrupt file fails here
    except Exception as exc:  # Pillow raises many types on bad data; all mean "unusable"
        return f"not a decodable image ({type(exc).__name__})"
    return None


def check_classes(found: list[tuple[str, bytes]], min_per_class: int
                  ) -> tuple[list[str], list[tuple[int, bytes]]]:
    counts = Counter(label for label, _ in found)
    labels = sorted(counts)
    if len(labels) < 2:
        raise invalid(f"a dataset needs at least 2 class folders; found {len(labels)}"
                      f" ({', '.join(labels) or 'none'})")
    if len(labels) > MAX_CLASSES:
        raise invalid(f"{len(labels)} classes; the limit is {MAX_CLASSES}")
    long = [label for label in labels if len(label) > MAX_LABEL_CHARS]
    if long:
        raise invalid(f"class names longer than {MAX_LABEL_CHARS} characters: {long[:3]}")
    few = [f"{label} ({counts[label]})" for label in labels if counts[label] < min_per_class]
    if few:
        raise invalid(f"every class needs at least {min_per_class} images; too few in:"
                      f" {', '.join(few[:MAX_LISTED])}")
    index = {label: i for i, label in enumerate(labels)}
    return labels, [(index[label], data) for label, data in found]
