"""The JX evaluator: what Makeflow's JX workflows use, and errors with line numbers."""

from __future__ import annotations

from typing import Any

import pytest

from chalicelib.errors import WorkflowError
from chalicelib.workflow import formats
from chalicelib.workflow.formats import jx
from chalicelib.workflow.formats.makeflow_json import load_jx_text, sniff_jx


def ev(text: str, **env: Any) -> Any:
    return jx.evaluate(jx.parse(text), env)


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("[1, 2, 3,]", [1, 2, 3]),
        ('{"a": 1, # comment\n "b": [true, false, null],}', {"a": 1, "b": [True, False, None]}),
        ("1 + 2 * 3 - 4 / 2", 5),
        ("7 / 2", 3),
        ("-7 / 2", -3),
        ("-7 % 3", -1),
        ("7.0 / 2", 3.5),
        ("ceil(7 / 2.0)", 4),
        ("floor(2.9)", 2),
        ('"ab" + "cd"', "abcd"),
        ("[1] + [2]", [1, 2]),
        ("1 < 2 and not (2 <= 1) or false", True),
        ('1 == "1"', False),
        ("[x * x for x in range(4)]", [0, 1, 4, 9]),
        ("[x for x in range(10) if x % 3 == 0]", [0, 3, 6, 9]),
        ("[[i, j] for i in range(2) for j in range(2) if i != j]", [[0, 1], [1, 0]]),
        ('["a", x for x in ["b", "c"], "d"]', ["a", "b", "c", "d"]),
        ("range(10)[2:4]", [2, 3]),
        ("range(10)[-1]", 9),
        ('{"k": 5}["k"]', 5),
        ('template("f{N}.{x}", {"x": "txt"})', "f10.txt"),
        ('format("%s_%d.sam", "SM", 23)', "SM_23.sam"),
        ('join(["a", "b", 3])', "a b 3"),
        ('join(["a", "b"], ",")', "a,b"),
        ('[1, 2, 3].len()', 3),
        ('basename("dir/file.csv", ".csv")', "file"),
        ('dirname("dir/file.csv")', "dir"),
        ('like("test", "t.s.")', True),
        ('"caf\\u00e9\\n"', "café\n"),
    ],
)
def test_expressions(text: str, value: Any) -> None:
    assert ev(text, N=10) == value


@pytest.mark.parametrize(
    ("text", "line", "phrase"),
    [
        ("[\n1,\n  MISSING]", 3, "undefined symbol 'MISSING'"),
        ('{\n"a": listdir("points")}', 2, "listdir()"),
        ("[1,\n 2 +]", 2, "expected a value"),
        ('\n\n[1] + "a"', 3, "mismatched types"),
        ("1 / 0", 1, "division by zero"),
        ('template("{nope}")', 1, "undefined symbol 'nope'"),
        ("frobnicate(1)", 1, "unknown function frobnicate()"),
        ('[x for x in 5]', 1, "needs a list"),
        ("range(3)[5]", 1, "out of range"),
        ('"open', 1, "string"),
    ],
)
def test_errors_carry_the_line(text: str, line: int, phrase: str) -> None:
    with pytest.raises(jx.JXError) as err:
        ev(text)
    assert err.value.line == line and phrase in err.value.message


def test_define_entries_see_the_ones_before_them_and_bind_the_rules() -> None:
    text = """# a JX workflow
{
  "define": {"N": 3, "FILES": ["f" + x for x in ["a", "b"]], "EXE": "./" + "run"},
  "rules": [
    {"command": template("{EXE} {f} > {f}.out"), "inputs": [EXE, f],
     "outputs": [template("{f}.out")]} for f in FILES,
    {"command": format("cat %s > all", join([f + ".out" for f in FILES])),
     "inputs": [f + ".out" for f in FILES], "outputs": ["all"], "local_job": N > 2},
  ],
}
"""
    assert sniff_jx(text)
    w = formats.loads(text, source="flow.jx")
    assert [t.id for t in w.tasks] == ["fa.out", "fb.out", "all"]
    assert w.tasks[0].shell == "./run fa > fa.out" and w.tasks[0].inputs == ("run", "fa")
    assert w.tasks[2].shell == "cat fa.out fb.out > all" and w.tasks[2].placement == "local"


def test_jx_errors_reach_the_user_with_the_line() -> None:
    with pytest.raises(WorkflowError) as err:
        formats.loads('{\n "rules": [\n  {"command": X}\n ]\n}\n', source="bad.jx")
    assert "bad.jx" in str(err.value) and "line 3: undefined symbol 'X'" in str(err.value)


def test_a_huge_range_is_refused() -> None:
    with pytest.raises(jx.JXError):
        ev("range(100000000)")


def test_absurd_nesting_is_an_error_not_a_crash() -> None:
    with pytest.raises(WorkflowError, match="nested too deeply"):
        load_jx_text('{"rules": ' + "[" * 5000 + "]" * 5000 + ', "x": y}', source="deep.jx")


def test_plus_joins_a_string_and_an_atom_as_cctools_does() -> None:
    assert ev('"out." + 1') == "out.1"
    assert ev('2 + ".txt"') == "2.txt"
    assert ev('"x" + 0.5') == "x0.5" and ev('"flag=" + true') == "flag=true"
    assert ev("1 + 2") == 3


def test_defines_from_outside_win_over_the_files_own() -> None:
    text = '{"define": {"N": 2, "M": N + 1}, "rules": [{"command": "echo " + M + " " + X}]}'
    data = jx.evaluate_workflow(text, {"N": 10, "X": "hi"})
    assert data["rules"][0]["command"] == "echo 11 hi"
    assert jx.evaluate_workflow(text, {"X": "a"})["rules"][0]["command"] == "echo 3 a"
