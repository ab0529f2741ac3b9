"""The web page: `/` and its static files (no auth: they hold no data; every data call the
page makes carries the API key the user typed in)."""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter
from fastapi.responses import FileResponse

from api.errors import not_found

router = APIRouter(include_in_schema=False)

STATIC_DIR = Path(__file__).resolve().parent.parent / "static"
# Served by name from this list only: nothing else on disk is reachable through the route.
ASSETS = {"style.css": "text/css"} | {
    f"{name}.js": "text/javascript"
    for name in ("app", "api", "ui", "tag", "zip", "jobs", "models", "training")}
# Same-origin scripts, styles and calls only; blob: for thumbnails and downloads made in the
# page. No inline script, no external host (the page must work offline).
CSP = ("default-src 'self'; img-src 'self' blob: data:; script-src 'self'; style-src 'self';"
       " connect-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'")
HEADERS = {"Content-Security-Policy": CSP, "X-Content-Type-Options": "nosniff",
           "Referrer-Policy": "no-referrer", "Cache-Control": "no-cache"}


@router.get("/")
def index() -> FileResponse:
    return FileResponse(STATIC_DIR / "index.html", media_type="text/html", headers=HEADERS)


@router.get("/static/{name}")
def asset(name: str) -> FileResponse:
    if name not in ASSETS:
        raise not_found("file")
    return FileResponse(STATIC_DIR / name, media_type=ASSETS[name], headers=HEADERS)
