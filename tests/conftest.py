from __future__ import annotations

from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"


@pytest.fixture
def shared_workflows() -> Path:
    path = SHARED / "workflows"
    if not path.is_dir():
        pytest.skip(f"{path} is absent: the shared test workflows live beside the repo")
    return path
