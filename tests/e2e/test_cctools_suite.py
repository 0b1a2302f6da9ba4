"""Makeflow's own regression tests (cctools makeflow/test/TR_*.sh) run through `updraft run`.

Each applicable TR script is a row of CASES: the workflow it runs (in place from ../shared,
or written from the script's heredoc into a temp folder), the inputs it prepares, and what it
checks (exit status of `makeflow` or of `makeflow_analyze -k`, which is `updraft validate`
here, and the output files it compares). The TR scripts that test other cctools tools
(starch, linker, alloc, gc, monitor, viz, valgrind) or need the network are listed in
docs/formats.md with the reason. Directory cases wait for issue 24 item 1 and are strict
expected failures, so they flag when directories land.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.e2e.cli import REPO, updraft


def _suite() -> Path | None:
    for root in (os.environ.get("UPDRAFT_SHARED"), REPO.parent / "shared", REPO.parent.parent / "shared",
                 "/work/shared"):
        if root:
            path = Path(root) / "workflows" / "cctools-makeflow" / "makeflow" / "test"
            if path.is_dir():
                return path
    return None


SUITE = _suite()
UNDECLARED = ("its rule copies $BASEDIR/condor_submit_makeflow but declares $BASEDIR/makeflow: a "
              "sandboxed task sees declared inputs only (Makeflow's remote executors fail it too)")


@dataclass(frozen=True)
class Step:
    """One `updraft` call: `run` (expect_ok: the run succeeds) or `validate`."""

    workflow: str  # under the suite, or under the temp folder when written by the case
    verb: str = "run"
    expect_ok: bool = True
    args: tuple[str, ...] = ()


@dataclass(frozen=True)
class Case:
    name: str
    steps: tuple[Step, ...]
    files: Mapping[str, str] = field(default_factory=dict)  # outputs and their exact text
    exists: tuple[str, ...] = ()  # outputs that must exist (the script only tests -f)
    loose: bool = False  # compare ignoring white space (the script uses diff -w)
    write: Mapping[str, str] = field(default_factory=dict)  # files the script's heredocs make
    data: Mapping[str, str] = field(default_factory=dict)  # inputs prepared in --data
    env: Mapping[str, str] = field(default_factory=dict)
    check: Callable[[Path, Path, Path], None] | None = None  # (outputs, temp dir, workdir)
    xfail: str | None = None


def _dirs(n: str, products: str) -> Case:
    """A folder as an output (`mydir:`) or an input (`input`, holding `hello`): runner/trees.py."""
    return Case(f"TR_makeflow_001_dirs_{n}", (Step(f"dirs/testcase.subdir.{n}.makeflow"),),
                exists=tuple(products.split()), data={"input/hello": "world\n"})


def _same_category(out: Path, _tmp: Path, _wd: Path) -> None:
    assert (out / "out_rule_2a").read_text() == (out / "out_rule_2b").read_text() == "two\n"


def _meta(out: Path, _tmp: Path, _wd: Path) -> None:
    typo = (SUITE / "syntax" / "typo.makeflow").read_text()  # type: ignore[operator]
    assert (out / "correct.makeflow").read_text() == typo.replace("capital", "capitol")


RESTART_JX = """{
\t"rules" :
\t[
\t\t{
\t\t\t"command" : format("cp file.%d file.%d",i,i+1),
\t\t\t"inputs"  : [ "file."+i ],
\t\t\t"outputs" : [ "file."+(i+1) ]
\t\t} for i in range(1,10)
\t]
}
"""


def _executed(out: str) -> int:
    record = json.loads(out.strip().splitlines()[-1])
    return int(record["counts"].get("SUCCEEDED", 0))


def _restart(_out: Path, tmp: Path, wd: Path) -> None:
    """Makeflow re-runs what is downstream of a changed file; Updraft keys on content, so
    the unchanged re-run executes nothing and a changed first file executes all nine."""
    again = updraft("run", str(tmp / "test.jx"), "--json", workdir=wd)
    assert again.returncode == 0, again.stderr
    assert _executed(again.stdout) == 0, again.stdout
    (tmp / "file.1").write_text("changed\n")
    changed = updraft("run", str(tmp / "test.jx"), "--json", workdir=wd)
    assert changed.returncode == 0, changed.stderr
    assert _executed(changed.stdout) == 9, changed.stdout


EXPORT_MF = """MAKEFLOW_INPUTS=""
MAKEFLOW_OUTPUTS=output.txt
export HELLO=hello makeflow
export GOODBYE
output.txt:
\techo \\$HELLO \\$GOODBYE > output.txt
"""
RENAME_MF = """MAKEFLOW_INPUTS=input.txt
MAKEFLOW_OUTPUTS=out.actual
out.1 -> out.txt: input.txt -> input.1
\tcat input.1 > out.txt
out.2 -> out.txt:
\techo world > out.txt
out.actual: out.1 out.2
\tcat out.1 out.2 > out.actual
"""
NESTED_JX = """{
\t"rules": [
\t\t{
\t\t\t"workflow" : "nested2.jx",
 \t\t\t"args" : { "a":5, "b":"hello", "n":10 },
\t\t\t"outputs" : [ "output.10" ]
   \t\t}
\t]
}
"""
NESTED2_JX = """{
\t"rules": [
 \t\t{
 \t\t\t"command":"echo " + a + " " + b + " > output."+n,
   \t\t\t"outputs" : [ "output."+n ]
   \t\t}
\t]
}
"""
NESTED_FOR_JX = """{
\t"rules": [
\t\t{
\t\t\t"workflow" : "nested2.jx",
 \t\t\t"args" : { "nested_var": n },
\t\t\t"outputs" : [ "output." + n ]
        } for n in range(10)
\t]
}
"""
NESTED_FOR2_JX = """{
\t"rules": [
 \t\t{
            "command":format("echo %d > output.%d", nested_var, nested_var),
   \t\t\t"outputs" : [ "output."+nested_var ]
   \t\t}
\t]
}
"""
TOPLEVEL_MF = """MAKEFLOW_INPUTS=input.txt
MAKEFLOW_OUTPUTS=out.actual
out.actual: input.txt
\tMAKEFLOW sublevel.makeflow
"""
SUBLEVEL_MF = """MAKEFLOW_INPUTS=input.txt
MAKEFLOW_OUTPUTS=out.actual
out.1: input.txt
\tcat input.txt > out.1
out.2:
\techo world > out.2
out.actual: out.1 out.2
\tcat out.1 out.2 > out.actual
"""
CAPITOL = ("capitol.montage.gif capitol.jpg capitol.90.jpg capitol.180.jpg capitol.270.jpg "
           "capitol.360.jpg")
ECHO = shutil.which("echo") or "/bin/echo"

CASES: list[Case] = [
    _dirs("01", "mydir/1.txt mydir/2.txt"),
    _dirs("02", "mydir/1.txt mydir/2.txt"),  # files in a folder, not a folder
    _dirs("03", "mydir/1.txt mydir/2.txt"),
    _dirs("04", "mydir/1.txt mydir/2.txt"),
    _dirs("05", "mydir/1.txt mydir/2.txt"),
    _dirs("06", "mydir/1.txt mydir/2.txt"),
    _dirs("07", "mydir/1.txt mydir/2.txt mydir/3.txt"),
    _dirs("08", "mydir/mysubdir/1.txt"),  # its input is the folder `input`
    _dirs("09", "mydir/mysubdir/1.txt"),
    _dirs("10", "mydir/mysubdir/1.txt"),
    _dirs("11", "1.txt mydir.txt mydir/1.txt mydir/2.txt mydir/1/a.txt mydir/1/b.txt "
                "mydir/1/haha/lala.txt mydir/1/haha/wawa.txt"),
    Case("TR_makeflow_020_category_variable_scope",
         (Step("syntax/category_variable_scope.makeflow"),), check=_same_category),
    Case("TR_makeflow_020_line_continuation", (Step("syntax/line_continuation.makeflow"),),
         files={"out2": "One Two Three\n"}),
    Case("TR_makeflow_020_syntax_command_comment",
         (Step("syntax/command_comment.makeflow", "validate"),
          Step("syntax/command_comment.makeflow")), files={"out": "# a comment\n"}),
    Case("TR_makeflow_020_syntax_dashes", (Step("syntax/dashes.makeflow"),),
         files={"ab": "hello\n", "a-b": "hello\n"}),
    # `makeflow` with no file name reads ./Makeflow; its inputs are cctools' own sources, at
    # ../../src, which is _up/_up/src in the data folder (docs/formats.md, paths)
    Case("TR_makeflow_020_syntax_default", (Step("syntax/Makeflow"),),
         data={"_up/_up/src/makeflow.c": "int main;\n", "_up/_up/src/makeflow": "binary\n",
               "_up/_up/src/condor_submit_makeflow": "script\n"},
         exists=("total_line_count.txt",), xfail=UNDECLARED),
    Case("TR_makeflow_020_syntax_long_line_test",
         (Step("long_line_test.makeflow", "validate"),), write={"long_line_test.makeflow": "@long"}),
    Case("TR_makeflow_020_syntax_meta", (Step("syntax/meta.makeflow"),), check=_meta),
    Case("TR_makeflow_020_syntax_meta2", (Step("syntax/meta2.makeflow"),), check=_meta),
    Case("TR_makeflow_020_syntax_test", (Step("syntax/test.makeflow", "validate"),)),
    Case("TR_makeflow_020_syntax_typo", (Step("syntax/typo.makeflow", "validate"),
                                         Step("syntax/typo.makeflow", expect_ok=False))),
    Case("TR_makeflow_020_syntax_variable_issues",
         (Step("syntax/variable_issues.makeflow", "validate", expect_ok=False),)),
    Case("TR_makeflow_020_syntax_variable_scope", (Step("syntax/variable_scope.makeflow"),),
         files={"out.all": "0\n1\n1 2\n0\n1\n"}),
    Case("TR_makeflow_021_export", (Step("syntax/export.makeflow"),),
         files={"out.all": "\n1\n2\n$\n$\n"}),
    # its inputs are the absolute $ECHOA and $ECHOC: _abs/... in the data folder
    Case("TR_makeflow_022_export", (Step("syntax/export.external.makeflow"),),
         env={"ECHOA": ECHO, "ECHOB": "echoY", "ECHOC": "echoX"},
         data={f"_abs{ECHO}": f"@copy:{ECHO}"},
         files={"out.all": f"{ECHO} echob\n{ECHO} echob\n"}),
    Case("TR_makeflow_023_export_vine", (Step("test.mf"),), write={"test.mf": EXPORT_MF},
         env={"GOODBYE": "goodbye makeflow"},
         files={"output.txt": "hello makeflow goodbye makeflow\n"}),
    Case("TR_makeflow_023_export_wq", (Step("test.mf"),), write={"test.mf": EXPORT_MF},
         env={"GOODBYE": "goodbye makeflow"},
         files={"output.txt": "hello makeflow goodbye makeflow\n"}),
    Case("TR_makeflow_024_directives", (Step("syntax/directives.makeflow", "validate"),)),
    Case("TR_makeflow_024_directives_bad_value",
         (Step("syntax/directives_bad_value.makeflow", "validate", expect_ok=False),)),
    Case("TR_makeflow_024_directives_unsupported",
         (Step("syntax/directives_unsupported.makeflow", "validate", expect_ok=False),)),
    Case("TR_makeflow_025_quoting", (Step("syntax/quotes.01.makeflow"),), loose=True,
         files={**{c: f"{c}\n" for c in "ABCDEFG"}, "C D": "C D 'C D' \"C D\"\n",
                "H I": "H I\n", "J K": "J K\n"}),
    Case("TR_makeflow_025_quoting_open",
         (Step("syntax/quotes.02.makeflow", "validate", expect_ok=False),
          Step("syntax/quotes.03.makeflow", "validate", expect_ok=False))),
    Case("TR_makeflow_040_sub_workflow_jx", (Step("nested.jx"),),
         write={"nested.jx": NESTED_JX, "nested2.jx": NESTED2_JX},
         files={"output.10": "5 hello\n"}),
    Case("TR_makeflow_040_sub_workflow_make", (Step("toplevel.makeflow"),),
         write={"input.txt": "hello\n", "toplevel.makeflow": TOPLEVEL_MF,
                "sublevel.makeflow": SUBLEVEL_MF},
         files={"out.actual": "hello\nworld\n"}),
    Case("TR_makeflow_050_sub_workflow_jx_for", (Step("nested.jx"),),
         write={"nested.jx": NESTED_FOR_JX, "nested2.jx": NESTED_FOR2_JX},
         files={"output.9": "9\n"}),
    # --argv files are makeflow's own command-line options; the workflow they name is run
    Case("TR_makeflow_json_argv", (Step("json/simple.json"),), exists=("A", "B", "C", "D")),
    Case("TR_makeflow_json_argv_nested", (Step("json/simple.json"),), exists=("D",)),
    Case("TR_makeflow_json_env", (Step("json/env.json"),), files={"A": "a\n", "B": "x\n"}),
    Case("TR_makeflow_json_files", (Step("json/files.json"),), files={"B": "A\nB\n"}),
    Case("TR_makeflow_json_local", (Step("json/local.json"),), files={"B": "A\nB\n"}),
    Case("TR_makeflow_json_simple", (Step("json/simple.json"),),
         files={"C": "C\nA\nB\n", "D": "A\nB\nC\n"}),
    Case("TR_makeflow_remote_renaming_vine", (Step("remote_name.makeflow"),),
         write={"input.txt": "hello\n", "remote_name.makeflow": RENAME_MF},
         files={"out.actual": "hello\nworld\n"}),
    Case("TR_makeflow_remote_renaming_wq", (Step("remote_name.makeflow"),),
         write={"input.txt": "hello\n", "remote_name.makeflow": RENAME_MF},
         files={"out.actual": "hello\nworld\n"}),
    Case("TR_makeflow_restart", (Step("test.jx"),),
         write={"file.1": "hello\n", "test.jx": RESTART_JX},
         files={"file.10": "hello\n"}, check=_restart),
]


def _long_line() -> str:
    words = " ".join(f"word{i}" for i in range(1_000_000))
    return f"all: {words} \n\tls\n"


def _prepare(case: Case, tmp: Path) -> None:
    assert SUITE is not None
    for rel, text in case.write.items():
        dest = tmp / rel
        dest.parent.mkdir(parents=True, exist_ok=True)
        if text == "@long":
            text = _long_line()
        elif text.startswith("@"):
            text = (SUITE / text[1:]).read_text()
        dest.write_text(text)
    for rel, text in case.data.items():
        dest = tmp / "data" / rel
        dest.parent.mkdir(parents=True, exist_ok=True)
        if text.startswith("@copy:"):
            shutil.copyfile(text.removeprefix("@copy:"), dest)
        else:
            dest.write_text(text)


def _flow(case: Case, step: Step, tmp: Path) -> Path:
    assert SUITE is not None
    local = tmp / step.workflow
    return local if step.workflow in case.write or local.exists() else SUITE / step.workflow


def _outputs(stdout: str, wd: Path) -> Path:
    record = json.loads(stdout.strip().splitlines()[-1])
    return wd / "blobs" / "runs" / record["run_id"] / "data"


@pytest.mark.skipif(SUITE is None, reason="cctools' makeflow/test is absent from ../shared")
@pytest.mark.parametrize("case", [
    pytest.param(c, id=c.name.removeprefix("TR_makeflow_"),
                 marks=[pytest.mark.xfail(reason=c.xfail, strict=True)] if c.xfail else [])
    for c in CASES
])
def test_tr_case(case: Case, tmp_path: Path) -> None:
    _prepare(case, tmp_path)
    wd = tmp_path / "wd"
    out: Path | None = None
    for step in case.steps:
        args = [step.verb, str(_flow(case, step, tmp_path)), *step.args]
        if step.verb == "run":
            args += ["--json"]
            if case.data:
                args += ["--data", str(tmp_path / "data")]
        proc = updraft(*args, workdir=wd if step.verb == "run" else None, env=dict(case.env),
                       timeout=300)
        said = f"{' '.join(args)}\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
        assert (proc.returncode == 0) == step.expect_ok, said
        if step.verb == "run" and step.expect_ok:
            out = _outputs(proc.stdout, wd)
    if case.files or case.exists or case.check:
        assert out is not None
        for rel in case.exists:
            assert (out / rel).is_file(), f"{rel} was not made"
        for rel, want in case.files.items():
            got = (out / rel).read_text()
            if case.loose:
                got, want = " ".join(got.split()), " ".join(want.split())
            assert got == want, f"{rel}: {got!r} != {want!r}"
        if case.check:
            case.check(out, tmp_path, wd)


def test_the_table_covers_every_tr_script_or_says_why_not() -> None:
    """Every TR_*.sh is a row here or a line of docs/formats.md's list of those that do not
    apply, so a new script in the suite is not silently skipped."""
    if SUITE is None:
        pytest.skip("cctools' makeflow/test is absent from ../shared")
    doc = (REPO / "docs" / "formats.md").read_text()
    rows = {c.name for c in CASES}
    for script in sorted(SUITE.glob("TR_*.sh")):
        assert script.stem in rows or f"`{script.stem}`" in doc, script.stem


if __name__ == "__main__":  # pragma: no cover - a quick tally: python tests/e2e/test_cctools_suite.py
    sys.exit(subprocess.call([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                              "-n", "2", __file__]))
