"""`updraft run|validate|show|convert --jx-args FILE --jx-define NAME=EXPR`, as makeflow's."""

from __future__ import annotations

import json
from pathlib import Path

from tests.e2e.cli import updraft

FLOW = """{
  "define": {"N": 2},
  "rules": [
    {"command": "echo " + WORD + " > out." + i, "outputs": ["out." + i]} for i in range(N)
  ]
}
"""


def test_jx_args_and_defines_bind_symbols_for_every_verb(tmp_path: Path) -> None:
    flow = tmp_path / "flow.jx"
    flow.write_text(FLOW)
    args = tmp_path / "args.jx"
    args.write_text('{"N": 3, "WORD": "from-args"}')
    shown = updraft("show", str(flow), "--json", "--jx-args", str(args), check=True)
    assert json.loads(shown.stdout)["tasks"] == 3
    defined = updraft("validate", str(flow), "--jx-args", str(args), "--jx-define", "N=N+1",
                      check=True)
    assert "valid, 4 tasks" in defined.stdout
    native = updraft("convert", str(flow), "--jx-define", 'WORD="x"', check=True)
    assert [t["id"] for t in json.loads(native.stdout)["tasks"]] == ["out.0", "out.1"]
    run = updraft("run", str(flow), "--json", "--jx-define", 'WORD="hello"', "--jx-define",
                  "N=1", workdir=tmp_path / "wd")
    assert run.returncode == 0, run.stderr
    record = json.loads(run.stdout.strip().splitlines()[-1])
    out = tmp_path / "wd" / "blobs" / "runs" / record["run_id"] / "data" / "out.0"
    assert out.read_text() == "hello\n"


def test_bad_jx_options_are_one_clear_error(tmp_path: Path) -> None:
    flow = tmp_path / "flow.jx"
    flow.write_text(FLOW)
    missing = updraft("validate", str(flow))
    assert missing.returncode == 2 and "undefined symbol 'WORD'" in missing.stderr
    for extra, phrase in ((["--jx-define", "N"], "expected NAME=EXPRESSION"),
                          (["--jx-define", "W=hello world"], "--jx-define 'W=hello world'"),
                          (["--jx-args", str(tmp_path / "nope.jx")], "cannot be read"),
                          (["--jx-args", str(flow)], "--jx-args")):
        proc = updraft("validate", str(flow), *extra)
        assert proc.returncode == 2 and phrase in proc.stderr, (extra, proc.stderr)
        assert "Traceback" not in proc.stderr
