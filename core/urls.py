"""What makes a client-supplied URL fetchable at all: checked by the API when a manifest or a
callback URL is submitted (a 422 naming the line), and again by the worker before it fetches
(worker.fetch, which also checks where the host resolves)."""

from __future__ import annotations

from urllib.parse import urlsplit

MAX_URL_LENGTH = 2048


def url_problem(url: str) -> str | None:
    """Why a URL can never be fetched, or None when it looks fine."""
    if len(url) > MAX_URL_LENGTH:
        return f"URL longer than {MAX_URL_LENGTH} characters"
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError on a bad port
    except ValueError as exc:
        return f"malformed URL ({exc})"
    if parts.scheme not in ("http", "https"):
        return f"unsupported URL scheme {parts.scheme or '(none)'!r}; use http or https"
    if not parts.hostname:
        return "URL has no host"
    return None
