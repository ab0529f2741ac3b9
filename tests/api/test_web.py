"""The web page: served without auth, self-contained (no external hosts), consistent."""

from __future__ import annotations

import re

from api.routes.web import ASSETS, STATIC_DIR

PAGE_FILES = ("index.html", *ASSETS)
SVG_NAMESPACE = "http://www.w3.org/2000/svg"  # a name, not a fetch


def test_the_page_and_its_assets_are_served_without_a_key(client):
    page = client.get("/")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert '<script type="module" src="/static/app.js"></script>' in page.text
    assert "default-src 'self'" in page.headers["content-security-policy"]
    for name in ASSETS:
        response = client.get(f"/static/{name}")
        assert response.status_code == 200, name
        assert response.headers["content-type"].startswith(ASSETS[name])


def test_every_module_the_page_imports_is_served():
    for name in ASSETS:
        if name.endswith(".js"):
            imported = re.findall(r'from "\./([\w.]+)"', (STATIC_DIR / name).read_text())
            assert set(imported) <= set(ASSETS), (name, imported)
    assert sorted(p.name for p in STATIC_DIR.iterdir()) == sorted(PAGE_FILES)


def test_only_the_listed_assets_are_reachable(client):
    for path in ("/static/index.html.bak", "/static/..%2Fmain.py", "/static/web.py"):
        response = client.get(path)
        assert response.status_code == 404
        assert response.json()["error"]["code"] == "not_found"


def test_the_page_and_its_data_calls_stay_out_of_the_api_schema(client):
    paths = client.get("/openapi.json").json()["paths"]
    assert "/" not in paths and "/static/{name}" not in paths


def test_the_page_loads_nothing_from_other_hosts():
    for name in PAGE_FILES:
        text = (STATIC_DIR / name).read_text().replace(SVG_NAMESPACE, "")
        assert not re.search(r"https?://|//cdn|@import", text), name


def test_every_element_the_scripts_use_exists_in_the_page():
    html = (STATIC_DIR / "index.html").read_text()
    ids = set(re.findall(r'\bid="([^"]+)"', html))
    scripts = "".join((STATIC_DIR / name).read_text() for name in ASSETS if name.endswith(".js"))
    used = set(re.findall(r'\$\("([^"]+)"\)', scripts))
    assert used and used <= ids, sorted(used - ids)


def test_the_key_is_sent_as_a_header_never_in_a_url():
    scripts = "".join((STATIC_DIR / name).read_text() for name in ASSETS if name.endswith(".js"))
    assert "Authorization: `Bearer ${key}`" in (STATIC_DIR / "api.js").read_text()
    assert "api_key=" not in scripts and "new EventSource" not in scripts
