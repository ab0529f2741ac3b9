"""Redis replies as Python records: the one hash decoder, and timestamps as records hold them."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime


def decode_hash(raw: dict[bytes, bytes] | Sequence[bytes] | None) -> dict[str, str]:
    """HGETALL (a dict, or the flat list a script returns) -> str dict; {} for nothing."""
    if not raw:
        return {}
    if not isinstance(raw, dict):
        raw = dict(zip(raw[::2], raw[1::2], strict=True))
    return {_text(k): _text(v) for k, v in raw.items()}


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")
