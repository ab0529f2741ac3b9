"""URL manifests: CSV with a header holding `item_id,url`, or JSONL objects with those keys.

Validated whole at submit time: a blank field, a bad URL or a repeated item_id is a 422 that
names the line, so a job never starts from a half-valid catalogue.
"""

from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass

from api.errors import ApiError
from api.urlcheck import url_error

MAX_ITEM_ID_LENGTH = 256


@dataclass(frozen=True)
class ManifestItem:
    item_id: str
    url: str


def parse_manifest(data: bytes, filename: str | None, max_items: int) -> list[ManifestItem]:
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise _invalid(f"manifest is not UTF-8 text ({exc.reason} at byte {exc.start})") from exc
    name = (filename or "").lower()
    is_jsonl = name.endswith((".jsonl", ".ndjson")) or (
        not name.endswith(".csv") and text.lstrip().startswith("{"))
    rows = _jsonl_rows(text) if is_jsonl else _csv_rows(text)
    items: list[ManifestItem] = []
    first_line: dict[str, int] = {}
    for line, item_id, url in rows:
        if len(items) >= max_items:
            raise ApiError(413, f"manifest holds more than {max_items} items", "too_many_items")
        if not item_id:
            raise _invalid(f"line {line}: item_id is missing or blank")
        if len(item_id) > MAX_ITEM_ID_LENGTH:
            raise _invalid(f"line {line}: item_id longer than {MAX_ITEM_ID_LENGTH} characters")
        if not url:
            raise _invalid(f"line {line}: url is missing or blank")
        if problem := url_error(url):
            raise _invalid(f"line {line}: {problem}")
        if item_id in first_line:
            raise _invalid(f"line {line}: duplicate item_id {item_id!r}"
                           f" (first on line {first_line[item_id]})")
        first_line[item_id] = line
        items.append(ManifestItem(item_id, url))
    if not items:
        raise _invalid("manifest has no items")
    return items


def _invalid(message: str) -> ApiError:
    return ApiError(422, message, "invalid_manifest")


def _csv_rows(text: str):
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        header = [h.strip().lower() for h in next(reader)]
    except StopIteration:
        raise _invalid("manifest is empty") from None
    except csv.Error as exc:
        raise _invalid(f"line 1: {exc}") from exc
    if "item_id" not in header or "url" not in header:
        raise _invalid("line 1: the CSV header must name the columns item_id and url")
    id_col, url_col = header.index("item_id"), header.index("url")
    try:
        for row in reader:
            if not any(cell.strip() for cell in row):
                continue  # blank line
            cells = row + [""] * (len(header) - len(row))
            yield reader.line_num, cells[id_col].strip(), cells[url_col].strip()
    except csv.Error as exc:
        raise _invalid(f"line {reader.line_num}: {exc}") from exc


def _jsonl_rows(text: str):
    for line, raw in enumerate(text.splitlines(), 1):
        if not raw.strip():
            continue
        try:
            obj = json.loads(raw)
        except json.JSONDecodeError as exc:
            raise _invalid(f"line {line}: not a JSON object ({exc.msg})") from exc
        if not isinstance(obj, dict):
            raise _invalid(f"line {line}: not a JSON object")
        item_id, url = obj.get("item_id"), obj.get("url")
        if isinstance(item_id, int) and not isinstance(item_id, bool):
            item_id = str(item_id)  # numeric SKUs are common; keep them as text
        if item_id is not None and not isinstance(item_id, str):
            raise _invalid(f"line {line}: item_id must be a string")
        if url is not None and not isinstance(url, str):
            raise _invalid(f"line {line}: url must be a string")
        yield line, (item_id or "").strip(), (url or "").strip()
