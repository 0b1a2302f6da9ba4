"""The dashboard page's text. One file, no build step; the same bytes are served by the local
server and by the Chalice app at GET /. The state table (names in display order, groups,
colours: chalicelib/engine/states.py) is put into the page here, so the page spells no state
list of its own."""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path

from chalicelib.engine.states import states_json

PAGE = Path(__file__).with_name("static") / "dashboard.html"
STATE_TABLE_SLOT = "__UPDRAFT_STATE_TABLE__"


@lru_cache(maxsize=1)
def page_html() -> str:
    text = PAGE.read_text(encoding="utf-8")
    if text.count(STATE_TABLE_SLOT) != 1:
        raise RuntimeError(f"{PAGE} must hold {STATE_TABLE_SLOT} once, where the state table goes")
    table = json.dumps(states_json(), separators=(",", ":")).replace("<", "\\u003c")  # (inside <script>)
    return text.replace(STATE_TABLE_SLOT, table)
