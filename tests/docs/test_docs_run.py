"""Every command and example a reader is meant to run in README.md and docs/*.md, run.

The blocks run in a copy of the repository with a virtual environment of their own, made by
`scripts/venv` from the machine's Python (the one a new user has), never the Python running
these tests: a dependency missing from pyproject.toml fails here. The environment is made once
per session and shared by every block; pip's wheel cache makes it quick after the first time.
`tests/docs/doc_blocks.py` says how a doc marks what to skip (with its reason), what output or
file to expect, and which example documents to write to a file.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.docs.doc_blocks import SHELL, Block, DocBlockError, docs, parse

REPO = Path(__file__).resolve().parents[2]

BLOCKS: list[Block] = []
PARSE_ERRORS: list[str] = []
for _doc in docs(REPO):
    try:
        BLOCKS.extend(parse(_doc))
    except DocBlockError as exc:
        PARSE_ERRORS.append(str(exc))


@dataclass(frozen=True)
class DocEnv:
    root: Path  # the copy of the repository the blocks run in
    env: dict[str, str]  # its virtual environment active


def _outer_free_env() -> dict[str, str]:
    """This process's environment without the virtual environment the tests run from."""
    env = {k: v for k, v in os.environ.items()
           if k not in ("VIRTUAL_ENV", "UPDRAFT_VENV", "UPDRAFT_HOME", "PYTHONPATH", "PYTHONHOME")}
    outer = {os.path.realpath(os.path.join(sys.prefix, "bin"))} if sys.prefix != sys.base_prefix else set()
    env["PATH"] = os.pathsep.join(p for p in env.get("PATH", os.defpath).split(os.pathsep)
                                  if p and os.path.realpath(p) not in outer)
    env["PYTHONNOUSERSITE"] = "1"
    return env


def _copy_repo(dest: Path) -> None:
    """The files a clone would have (plus uncommitted ones), without .venv, .updraft, caches."""
    listed = subprocess.run(["git", "-C", str(REPO), "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
                            capture_output=True, check=False)
    if listed.returncode == 0 and listed.stdout:
        for rel in filter(None, listed.stdout.decode().split("\0")):
            src = REPO / rel
            if src.is_file():
                (dest / rel).parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(src, dest / rel)
    else:
        shutil.copytree(REPO, dest, ignore=shutil.ignore_patterns(
            ".git", ".venv", ".updraft", "__pycache__", ".mypy_cache", ".ruff_cache", ".pytest_cache"))


@pytest.fixture(scope="session")
def doc_env(tmp_path_factory: pytest.TempPathFactory) -> DocEnv:
    root = tmp_path_factory.mktemp("docs") / "repo"
    root.mkdir()
    _copy_repo(root)
    env = _outer_free_env()
    made = subprocess.run([str(root / "scripts" / "venv"), "report", "cwl"], cwd=root, env=env, text=True,
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=1800, check=False)
    assert made.returncode == 0, f"scripts/venv failed in a copy of the repo:\n{made.stdout[-4000:]}"
    venv = root / ".venv"
    env = {**env, "VIRTUAL_ENV": str(venv), "PATH": f"{venv / 'bin'}{os.pathsep}{env['PATH']}"}
    return DocEnv(root=root, env=env)


def _params() -> list[object]:
    params: list[object] = []
    for block in BLOCKS:
        if block.checked:
            marks = [pytest.mark.slow] if block.slow else []
            params.append(pytest.param(block, id=block.where, marks=marks))
    return params


def test_the_docs_markers_are_well_formed() -> None:
    assert not PARSE_ERRORS, "\n".join(PARSE_ERRORS)


def test_every_block_of_commands_says_whether_it_runs() -> None:
    untagged = [f"{b.where}: {b.text.strip().splitlines()[0]}" for b in BLOCKS
                if b.lang == "" and b.looks_like_commands()]
    assert not untagged, (
        "these blocks hold commands but no language: tag each `bash` (the doc tests run it; mark it "
        "`<!-- doc-test: skip: REASON -->` when it cannot run here) or `text` (a synopsis or output):\n"
        + "\n".join(untagged))


def test_the_docs_have_blocks_that_run() -> None:
    runs = [b for b in BLOCKS if b.runnable and b.skip is None]
    assert len(runs) >= 10, [b.where for b in runs]  # the discovery itself works


@pytest.mark.timeout(3600)
@pytest.mark.parametrize("block", _params())
def test_doc_block(block: Block, request: pytest.FixtureRequest) -> None:
    if block.skip is not None:
        pytest.skip(f"{block.where}: {block.skip}")
    if block.lang == "json":
        try:
            json.loads(block.text)
        except ValueError as exc:
            pytest.fail(f"{block.where}: the JSON example does not parse: {exc}")
        if block.file is None:
            return
    env: DocEnv = request.getfixturevalue("doc_env")
    if block.file is not None:
        target = env.root / block.file
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(block.text)
        return
    script = env.root.parent / f"block-{block.doc.stem}-{block.line}.{'py' if block.lang == 'python' else 'sh'}"
    script.write_text(block.script())
    if block.lang in SHELL:
        argv = ["bash", "-e", "-o", "pipefail", str(script)]
    else:
        argv = [str(env.root / ".venv" / "bin" / "python"), str(script)]
    try:
        done = subprocess.run(argv, cwd=env.root, env=env.env, text=True, stdin=subprocess.DEVNULL,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=block.timeout, check=False)
    except subprocess.TimeoutExpired as exc:
        output = str(exc.output or "")[-4000:]
        pytest.fail(f"{block.where}: still running after {block.timeout:.0f} s:\n{block.script()}\n{output}")
    tail = done.stdout[-6000:]
    assert done.returncode == block.exit_code, (
        f"{block.where} exited {done.returncode} (expected {block.exit_code}):\n{block.script()}\n--- output:\n{tail}")
    for text in block.expect:
        assert text in done.stdout, f"{block.where}: '{text}' not in the output:\n{tail}"
    for rel in block.expect_files:
        path = env.root / rel
        assert path.is_file() and path.stat().st_size > 0, f"{block.where}: {rel} was not written:\n{tail}"
