"""Client-supplied URLs (a job's callback_url, manifest lines): core.urls' rule, plus what it
lets through because urlsplit silently drops it: control characters. A CR/LF in a URL would
split the request line or headers of the request a worker makes with it."""

from __future__ import annotations

from core.urls import url_problem


def url_error(url: str) -> str | None:
    """Why the API refuses this URL (a 422 names it), or None."""
    if any(ord(c) < 0x20 or 0x7F <= ord(c) <= 0x9F or c in "\u2028\u2029" for c in url):
        return "control characters (CR, LF, tab, ...) are not allowed in a URL"
    return url_problem(url)
