"""Makeflow make syntax: rules, variables, categories, LOCAL, directives; errors name lines."""

from __future__ import annotations

from pathlib import Path

import pytest

from chalicelib.errors import WorkflowError
from chalicelib.workflow import formats
from chalicelib.workflow.formats import makeflow
from chalicelib.workflow.model import Placement, Workflow


def load(text: str) -> Workflow:
    return formats.loads(text, source="flow.mf")


def rejected(text: str) -> str:
    with pytest.raises(WorkflowError) as err:
        load(text)
    return str(err.value)


def test_rules_become_shell_tasks_with_files_and_edges() -> None:
    w = load("a.txt: in.txt\n\tsort in.txt > a.txt\n\nb.txt c.txt: a.txt\n\tLOCAL split a.txt\n")
    a, b = w.tasks
    assert (a.id, a.shell, a.inputs, a.outputs) == ("a.txt", "sort in.txt > a.txt",
                                                   ("in.txt",), ("a.txt",))
    assert a.command == () and a.placement is Placement.AUTO
    assert b.id == "b.txt" and b.outputs == ("b.txt", "c.txt") and b.shell == "split a.txt"
    assert b.placement is Placement.LOCAL and b.inputs == ("a.txt",)
    assert w.name == "flow"


def test_variables_are_substituted_in_files_and_commands_but_not_in_single_quotes() -> None:
    text = ("TOOL=./bin/tool\nOPTS=-a 1\nOPTS+=-b 2\nEXT=dat\n"
            "out.$EXT: $(TOOL) in.${EXT}\n\t$TOOL $OPTS '$HOME' \"$EXT\" $UNKNOWN > out.$EXT\n")
    (t,) = load(text).tasks
    assert t.outputs == ("out.dat",) and t.inputs == ("bin/tool", "in.dat")
    assert t.shell == "./bin/tool -a 1 -b 2 '$HOME' \"dat\" ${UNKNOWN} > out.dat"
    assert t.env == {"CORES": "1", "OMP_NUM_THREADS": "1"}  # none is exported
    assert "$UNKNOWN (line 6)" in load(text).description


def test_categories_carry_resources_and_fall_back_to_the_default_category() -> None:
    text = ("MEMORY=2048\n"
            "CATEGORY=\"sim\"\nCORES=4\nDISK=600\nWALL_TIME=120\n"
            "s.out: s.in\n\tsimulate\n"
            "CATEGORY=analysis\nCORES=2\n"
            "a.out: s.out\n\tanalyze\n"
            "CATEGORY=sim\n"
            "t.out: s.in\n\tsimulate again\n")
    s, a, t = load(text).tasks
    assert (s.type, s.resources.cpus, s.resources.memory_mb, s.resources.disk_mb,
            s.resources.timeout_s) == ("sim", 4, 2048, 600, 120)
    assert (a.type, a.resources.cpus, a.resources.memory_mb, a.resources.disk_mb) == (
        "analysis", 2, 2048, 512)
    assert (t.resources.cpus, t.resources.disk_mb) == (4, 600)  # back in "sim"
    assert (s.env["CATEGORY"], s.env["CORES"], s.env["MEMORY"]) == ("sim", "4", "2048")
    assert s.env["OMP_NUM_THREADS"] == "4" and a.env["CATEGORY"] == "analysis"


def test_rule_local_variables_apply_to_that_rule_only() -> None:
    text = ("export X=global\n"
            "one: \n@X=local\n\techo $X > one\n"
            "two: \n\techo $X > two\n")
    one, two = load(text).tasks
    assert one.shell == "echo local > one" and one.env["X"] == "local"
    assert two.shell == "echo global > two" and two.env["X"] == "global"


def test_directives_size_and_makeflow_resources() -> None:
    text = (".SIZE big.in 2G\n.SIZE mid.out 1500\n"
            "mid.out: big.in\n.MAKEFLOW CORES 3\n.MAKEFLOW CATEGORY heavy\n\tcrunch\n"
            "end.out: mid.out\n\tfinish\n")
    mid, end = load(text).tasks
    assert mid.hints == {"size:mid.out": 1500, "size:big.in": 2 * 1024**3}
    assert mid.resources.cpus == 3 and mid.type == "heavy"
    assert end.hints == {}  # mid.out is not a workflow input


def test_export_puts_variables_in_the_environment() -> None:
    text = "export LANG=C\nexport HOME\nout: \n\tlocale > out\n"
    w = load(text)
    assert w.tasks[0].env == {"LANG": "C", "CORES": "1", "OMP_NUM_THREADS": "1"}
    assert "exported without a value" in w.description and "HOME" in w.description


def test_blank_tab_lines_comments_and_continuations() -> None:
    text = ("# a comment\n\nout: a \\\n   b # trailing comment\n\t\n# between\n"
            "\t cmd a b > out # not part of the command\n")
    (t,) = load(text).tasks
    assert t.inputs == ("a", "b") and t.shell == "cmd a b > out"


def test_batch_local_variable_makes_rules_local() -> None:
    (t,) = load("BATCH_LOCAL=true\nout:\n\techo > out\n").tasks
    assert t.placement is Placement.LOCAL


def test_absolute_and_parent_paths_are_mapped_and_said() -> None:
    w = load("out: /usr/bin/perl ../shared/x\n\tperl x > out\n")
    assert w.tasks[0].inputs == ("_abs/usr/bin/perl", "_up/shared/x")
    assert "'/usr/bin/perl' -> '_abs/usr/bin/perl'" in w.description


def test_task_ids_come_from_first_targets_and_stay_unique() -> None:
    w = load("x/y z: \n\tmake x/y z\nx_y: \n\tmake x_y\n")
    assert [t.id for t in w.tasks] == ["x_y", "x_y-2"]


@pytest.mark.parametrize(
    ("text", "phrases"),
    [
        ("out: $MISSING\n\tcat > out\n", ["line 1", "'MISSING' is not defined"]),
        ("out: in\n\nother: in\n\tx\n", ["line 1", "no command"]),
        ("out: in\n\tcat in > out\n\tsecond\n", ["line 3", "outside a rule"]),
        ("out: in\n\tcp in out\nout: in2\n\tcp in2 out\n",
         ["line 3", "'out' is also made by the rule at line 1"]),
        ("out -> /o: in\n\tcp in /o\n", ["line 1", "remote name '/o'"]),
        ("out: sub.mf\n\tMAKEFLOW sub.mf\n", ["line 1", "nested workflow 'sub.mf'"]),
        ('out: "in\n\tcat in > out\n', ["line 1", "double quote"]),
        ("=bad\nout:\n\tx\n", ["line 1", "not a variable assignment"]),
        (".MAKEFLOW CORES some\nout:\n\tx\n", ["line 1", "expects a number"]),
        (".MAKEFLOW NOT_DIRECTIVE x\nout:\n\tx\n", ["line 1", "malformed directive"]),
        (".UMBRELLA SPEC x.json\nout:\n\tx\n", ["line 1", "unsupported directive '.UMBRELLA'"]),
        (".SIZE out lots\nout:\n\tx\n", ["line 1", "'lots'"]),
        ("CORES=many\nout:\n\tx\n", ["line 3", "CORES must be a number"]),
        ("hello world\nout:\n\tx\n", ["line 1", "not a rule, a variable or a directive"]),
        ("out: out\n\ttouch out\n", ["line 1", "both a source and a target"]),
    ],
)
def test_errors_name_the_source_line(text: str, phrases: list[str]) -> None:
    message = rejected(text)
    for phrase in phrases:
        assert phrase in message


def test_sniff_needs_a_rule_with_an_indented_command() -> None:
    assert makeflow.sniff("X=1\n\nout: in\n\tcat in > out\n")
    assert not makeflow.sniff("Title: a document\n\nSome text: more text\n")
    assert not makeflow.sniff('{\n"rules": [\n\t{"command": "x"}]}\n')


def test_snpexp_reads_variables_and_mostly_local_rules(shared_workflows: Path) -> None:
    w = formats.load(str(shared_workflows / "makeflow/makeflow-examples/snpexp/snpexp.mf"))
    assert sum(t.placement is Placement.LOCAL for t in w.tasks) == 25
    task = w.task_map()["out.2R"]  # its command follows a tab-only line
    assert task.shell is not None and task.shell.startswith("./jexec.py -classpath Aligner.jar:")
    assert task.shell.endswith(">& out.2R") and "samtools" in w.task_map()["2847.fa.fai"].inputs


def test_an_undefined_variable_is_left_to_the_shell_as_a_variable_not_a_command() -> None:
    (t,) = load("out: \n\techo $(UNDEF) ${ALSO} > out\n").tasks
    assert t.shell == "echo ${UNDEF} ${ALSO} > out"  # '$(UNDEF)' would run a program named UNDEF


# -- issue 24: Makeflow's own semantics ------------------------------------------------------

def test_backslash_dollar_is_left_to_the_shell_and_backslashes_are_reduced() -> None:
    text = "X=1\nout:\n\techo \\$X \\\\\\$ \\$GOODBYE \"a\\tb\" '$X' > out\n"
    (t,) = load(text).tasks
    assert t.shell == "echo $X \\$ $GOODBYE \"a\tb\" '$X' > out"


def test_only_exported_variables_and_makeflows_own_reach_the_environment() -> None:
    text = "X=1\nexport Y=2\nCATEGORY=big\nCORES=3\nout:\n\tprintenv X > out\n"
    (t,) = load(text).tasks
    assert t.env == {"Y": "2", "CATEGORY": "big", "CORES": "3", "OMP_NUM_THREADS": "3"}


def test_quoted_names_in_rule_heads() -> None:
    text = ('"A":\n\techo A > A\n'
            "'B' \"C D\":\n\ttouch B 'C D'\n"
            'V="H I" "J K"\n$(V):\n\ttouch "H I" "J K"\n'
            'W=E F\n"$(W)" $(W):\n\ttouch "E F" E F\n')
    a, b, h, e = load(text).tasks
    assert (a.outputs, b.outputs, h.outputs, e.outputs) == (
        ("A",), ("B", "C D"), ("H I", "J K"), ("E F", "E", "F"))


def test_rules_without_targets_and_space_indented_commands_are_detected_and_read() -> None:
    text = "in.txt:\n    echo hi > in.txt\n: in.txt\n    cat in.txt\n"
    assert makeflow.sniff(text)
    made, check = load(text).tasks
    assert check.id == "rule-2" and check.inputs == ("in.txt",) and check.outputs == ()
    assert made.shell == "echo hi > in.txt"
    assert not makeflow.sniff("Note: a list\n    code in a README\nSee: here\n\nMore: text\n")


def test_undefined_variables_come_from_the_importing_users_environment() -> None:
    from chalicelib.workflow.formats.context import ImportContext, importing

    text = "export ECHOC=$ECHOA\nout: $ECHOA\n\t$ECHOA $ECHOB > out\n"
    with importing(ImportContext(environ={"ECHOA": "/bin/echo", "ECHOB": "b"})):
        w = load(text)
    (t,) = w.tasks
    assert t.shell == "/bin/echo b > out" and t.env["ECHOC"] == "/bin/echo"
    assert t.inputs == ("_abs/bin/echo",) and "ECHOA" in w.description
    assert "not defined" in rejected(text)  # without it (a server's import): $ECHOA is unknown


def test_remote_names_wrap_the_command_in_the_private_sandbox() -> None:
    text = "out.1 -> out.txt: in.txt -> in.1\n\tcat in.1 > out.txt\n"
    (t,) = load(text).tasks
    assert (t.inputs, t.outputs) == (("in.txt",), ("out.1",))
    assert t.shell == "cp -p -- in.txt in.1 && ( cat in.1 > out.txt ) && mv -- out.txt out.1"


def test_a_nested_makeflow_is_inlined(tmp_path: Path) -> None:
    (tmp_path / "sub.mf").write_text("mid: in\n\tcp in mid\nout: mid\n\tcp mid out\n")
    top = tmp_path / "top.mf"
    top.write_text("out: in\n\tMAKEFLOW sub.mf\n")
    w = formats.load(str(top))
    assert [t.id for t in w.tasks] == ["mid", "out"] and "inlined" in w.description
    top.write_text("other: in\n\tMAKEFLOW sub.mf\n")
    with pytest.raises(WorkflowError, match="makes none of \\['other'\\]"):
        formats.load(str(top))


def test_many_plain_sources_map_as_one_by_one() -> None:
    from chalicelib.workflow.formats.names import PathError, PathMapper

    plain = [f"d{i % 7}/word{i}.txt" for i in range(500)]
    mixed = [*plain[:100], "./x", "a//b", "../up", "/abs/p", "sp ace", "C:/w", "x/"]
    for raws in (plain, mixed, mixed[::-1]):
        one = PathMapper()
        assert list(PathMapper().map_many(raws)) == [one.map(r) for r in raws]
    clash = PathMapper()
    clash.map("/x")  # maps to _abs/x
    with pytest.raises(PathError, match="would both map to '_abs/x'"):
        clash.map_many(["_abs/x", *plain])
    later = PathMapper()
    later.map_many(["_abs/x", *plain])
    with pytest.raises(PathError, match="would both map to '_abs/x'"):
        later.map("/x")


def test_text_without_a_folder_reads_no_nested_file() -> None:
    """A workflow sent as text (the cloud API) must not make the server read its files."""
    message = rejected("out:\n\tMAKEFLOW /etc/passwd\n")
    assert "import the file from disk" in message and "root" not in message


def test_prose_with_an_example_rule_in_it_is_not_makeflow() -> None:
    readme = "This is a preview of Makeflow.\nIt reads rules like this one.\n\nout: in\n\tcat in > out\n"
    assert not makeflow.sniff(readme)
    assert makeflow.sniff("# a comment first\nout: in\n\tcat in > out\n")
