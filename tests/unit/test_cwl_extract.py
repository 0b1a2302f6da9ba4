"""A CWL step's archive unpacks only files and folders inside its destination, also on a
Python without tarfile's 'data' filter (Debian's 3.11.2 has none: it came in 3.11.4)."""

from __future__ import annotations

import io
import tarfile
from pathlib import Path

import pytest

from chalicelib.cwl.errors import CwlError
from chalicelib.cwl.launch import extract


def _archive(path: Path, members: list[tuple[str, bytes | None, str | None]]) -> Path:
    with tarfile.open(path, "w") as tar:
        for name, data, link in members:
            info = tarfile.TarInfo(name)
            if link is not None:
                info.type, info.linkname = tarfile.SYMTYPE, link
                tar.addfile(info)
            elif data is None:
                info.type = tarfile.DIRTYPE
                tar.addfile(info)
            else:
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
    return path


@pytest.fixture(params=["data filter", "checked by hand"])
def interpreter(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    if request.param == "checked by hand":
        monkeypatch.delattr(tarfile, "data_filter", raising=False)
    elif not hasattr(tarfile, "data_filter"):
        pytest.skip("this Python's tarfile has no 'data' filter")
    return str(request.param)


def test_files_and_folders_unpack(tmp_path: Path, interpreter: str) -> None:
    tar_path = _archive(tmp_path / "a.tar", [("d", None, None), ("d/f.txt", b"hi", None), ("o.json", b"{}", None)])
    with tarfile.open(tar_path) as tar:
        extract(tar, str(tmp_path / "out"))
    assert (tmp_path / "out" / "d" / "f.txt").read_bytes() == b"hi"
    assert (tmp_path / "out" / "o.json").read_bytes() == b"{}"


@pytest.mark.parametrize("member", [("../escape.txt", b"x", None), ("link", None, "/etc/passwd")])
def test_a_member_outside_or_a_link_out_is_refused(tmp_path: Path, interpreter: str,
                                                    member: tuple[str, bytes | None, str | None]) -> None:
    tar_path = _archive(tmp_path / "a.tar", [member])
    with tarfile.open(tar_path) as tar, pytest.raises((CwlError, tarfile.FilterError)):
        extract(tar, str(tmp_path / "out"))
    assert not (tmp_path / "escape.txt").exists()


def test_an_absolute_member_never_lands_outside(tmp_path: Path, interpreter: str) -> None:
    name = f"/tmp/{tmp_path.name}-absolute.txt"  # the data filter unpacks it inside; by hand: refused
    tar_path = _archive(tmp_path / "a.tar", [(name, b"x", None)])
    try:
        with tarfile.open(tar_path) as tar:
            extract(tar, str(tmp_path / "out"))
    except CwlError:
        pass
    assert not Path(name).exists()
