"""URLs that can never be fetched are refused with a reason (at submit time and again before
a fetch)."""

import pytest

from core.urls import url_problem


@pytest.mark.parametrize("url", ["ftp://x/a.png", "file:///etc/passwd", "gopher://x", "x.png",
                                 "http://", "http://host:99999/", "http://" + "a" * 3000])
def test_unfetchable_urls_are_named(url):
    assert url_problem(url)


@pytest.mark.parametrize("url", ["http://example.com/a.jpg", "https://cdn.example.com:8443/x"])
def test_ordinary_urls_pass(url):
    assert url_problem(url) is None
