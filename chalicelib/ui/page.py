"""The dashboard page's text. One file, no build step; the same bytes are served by the local
server and by the Chalice app at GET /."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

PAGE = Path(__file__).with_name("static") / "dashboard.html"


@lru_cache(maxsize=1)
def page_html() -> str:
    return PAGE.read_text(encoding="utf-8")
