"""Reading image archives (.zip, .tar, .tar.gz) safely, in memory, one member at a time.

Nothing is ever extracted to disk, so member names (`../x`, `/etc/passwd`) are only labels.
Guards: the member count (TAGGER_MAX_ITEMS_PER_JOB) and the total uncompressed size
(TAGGER_MAX_ARCHIVE_UNCOMPRESSED_BYTES) refuse the whole archive (413); a member larger than
TAGGER_MAX_IMAGE_BYTES, one compressed more than TAGGER_MAX_ARCHIVE_RATIO times (zip bomb), a
nested archive or an unreadable member becomes a per-item error. Directories, symlinks, devices
and macOS resource forks (`__MACOSX/`) are skipped.
"""

from __future__ import annotations

import stat
import tarfile
import zipfile
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import BinaryIO

from api.errors import ApiError

# Below this size a high compression ratio is harmless (a flat-colour BMP is no bomb).
RATIO_FLOOR_BYTES = 64 * 1024
NESTED_MAGIC = (b"PK\x03\x04", b"\x1f\x8b", b"BZh", b"\xfd7zXZ\x00", b"7z\xbc\xaf\x27\x1c",
                b"Rar!")
# Per-member read failures: corrupt data, CRC mismatch, unsupported method, encryption.
MEMBER_ERRORS = (zipfile.BadZipFile, zlib.error, EOFError, NotImplementedError, RuntimeError,
                 OSError, ValueError, tarfile.TarError)


@dataclass(frozen=True)
class ArchiveLimits:
    max_items: int
    max_member_bytes: int
    max_total_bytes: int
    max_ratio: float


Member = tuple[str, bytes | None, str | None]  # (name, bytes, or None and the per-item error)


def sniff(head: bytes) -> str | None:
    """'zip', 'tar.gz' or 'tar' from the first 512 bytes; None for anything else."""
    if head.startswith((b"PK\x03\x04", b"PK\x05\x06")):
        return "zip"
    if head.startswith(b"\x1f\x8b"):
        return "tar.gz"
    if head[257:262] == b"ustar":
        return "tar"
    return None


def read_members(fileobj: BinaryIO, kind: str, limits: ArchiveLimits,
                 size: int) -> Iterator[Member]:
    """Members in archive order; `size` is the archive's own (compressed) size."""
    if kind == "zip":
        return _zip_members(fileobj, limits)
    return _tar_members(fileobj, "r:gz" if kind == "tar.gz" else "r:", limits, size)


def _nested_or_data(name: str, data: bytes) -> Member:
    if data.startswith(NESTED_MAGIC) or data[257:262] == b"ustar":
        return name, None, "nested archives are not supported"
    return name, data, None


def _zip_members(fileobj: BinaryIO, limits: ArchiveLimits) -> Iterator[Member]:
    try:
        archive = zipfile.ZipFile(fileobj)
    except (zipfile.BadZipFile, OSError, ValueError) as exc:
        raise ApiError(422, f"corrupt zip archive: {exc}", "invalid_archive") from exc
    members = [m for m in archive.infolist() if not _zip_skipped(m)]
    # The central directory gives every size up front: refuse before reading anything.
    if len(members) > limits.max_items:
        raise ApiError(413, f"archive holds {len(members)} files; the limit is"
                            f" {limits.max_items}", "too_many_items")
    total = sum(m.file_size for m in members)
    if total > limits.max_total_bytes:
        raise ApiError(413, f"archive expands to {total} bytes; the limit is"
                            f" {limits.max_total_bytes}")
    for m in members:
        if m.file_size > limits.max_member_bytes:
            yield m.filename, None, f"file larger than {limits.max_member_bytes} bytes"
        elif (m.file_size > RATIO_FLOOR_BYTES
              and m.file_size > limits.max_ratio * max(1, m.compress_size)):
            yield m.filename, None, "compression ratio too high (possible zip bomb)"
        else:
            try:
                # ZipExtFile stops at the declared size and checks the CRC: a member cannot
                # expand past what was checked above.
                yield _nested_or_data(m.filename, archive.read(m))
            except MEMBER_ERRORS as exc:
                yield m.filename, None, f"unreadable archive member: {exc}"


def _zip_skipped(m: zipfile.ZipInfo) -> bool:
    is_link = stat.S_ISLNK(m.external_attr >> 16)
    return m.is_dir() or is_link or m.filename.startswith("__MACOSX/")


def _tar_members(fileobj: BinaryIO, mode: str, limits: ArchiveLimits,
                 size: int) -> Iterator[Member]:
    # Streamed in one forward pass (seeking back in a .tar.gz would decompress it again),
    # so the totals are checked as headers arrive and may refuse the archive half-way.
    try:
        archive = tarfile.open(fileobj=fileobj, mode=mode)
    except (tarfile.TarError, OSError, EOFError, zlib.error) as exc:
        raise ApiError(422, f"corrupt tar archive: {exc}", "invalid_archive") from exc
    count = total = 0
    try:
        for m in archive:
            if not m.isreg() or m.name.startswith("__MACOSX/"):
                continue  # directories, symlinks, hard links, devices, FIFOs
            count += 1
            total += m.size
            if count > limits.max_items:
                raise ApiError(413, f"archive holds more than {limits.max_items} files",
                               "too_many_items")
            if total > limits.max_total_bytes:
                raise ApiError(413, f"archive expands past {limits.max_total_bytes} bytes")
            if total > RATIO_FLOOR_BYTES and total > limits.max_ratio * max(1, size):
                raise ApiError(413, "archive compression ratio too high (possible bomb)")
            if m.size > limits.max_member_bytes:
                yield m.name, None, f"file larger than {limits.max_member_bytes} bytes"
                continue
            try:
                reader = archive.extractfile(m)
                yield _nested_or_data(m.name, reader.read() if reader else b"")
            except MEMBER_ERRORS as exc:
                yield m.name, None, f"unreadable archive member: {exc}"
    except (tarfile.TarError, OSError, EOFError, zlib.error) as exc:
        raise ApiError(422, f"corrupt tar archive: {exc}", "invalid_archive") from exc
