from __future__ import annotations

from pathlib import Path

import pytest

from chalicelib.errors import FormatError, WorkflowError
from chalicelib.workflow.formats import loads, native
from chalicelib.workflow.graph import build_graph, external_inputs
from chalicelib.workflow.validate import problems, validate


def wf(tasks: list[dict], **top: object):
    return loads(__import__("json").dumps({"name": "t", "tasks": tasks, **top}))


def messages(tasks: list[dict], **top: object) -> list[str]:
    return [str(p) for p in problems(wf(tasks, **top))]


def test_valid_workflow_has_no_problems() -> None:
    assert messages([{"id": "a", "command": ["true"], "outputs": ["x"]},
                     {"id": "b", "command": ["cat", "x"], "inputs": ["x"]}]) == []


def test_cycle_is_reported_with_its_path() -> None:
    found = messages([
        {"id": "a", "command": ["true"], "inputs": ["z"], "outputs": ["x"]},
        {"id": "b", "command": ["true"], "inputs": ["x"], "outputs": ["y"]},
        {"id": "c", "command": ["true"], "inputs": ["y"], "outputs": ["z"]},
    ])
    cycle = [m for m in found if "cycle" in m]
    assert cycle == ["task 'a', field 'after/inputs': dependency cycle: a -> b -> c -> a"]


def test_all_problems_are_collected_each_with_its_task() -> None:
    found = messages([
        {"id": "a", "command": ["true"], "outputs": ["/etc/passwd"]},
        {"id": "a", "command": ["true"]},
        {"id": "b", "command": ["true"], "after": ["nope"], "outputs": ["../up"]},
        {"id": "c", "shell": "x", "command": ["y"]},
        {"id": "d", "command": ["true"], "outputs": ["o"]},
        {"id": "e", "command": ["true"], "outputs": ["o"]},
        {"id": "f", "command": ["true"], "resources": {"timeout_s": 1000, "memory_mb": 20000}},
    ])
    joined = "\n".join(found)
    assert "task 'a', field 'outputs': path '/etc/passwd' is absolute" in joined
    assert "task 'a', field 'id': duplicate task id" in joined
    assert "task 'b', field 'after': 'after' names unknown task 'nope'" in joined
    assert "task 'b', field 'outputs': path '../up' contains '..'" in joined
    assert "task 'c', field 'command': give exactly one of" in joined
    assert "task 'e', field 'outputs': output 'o' is also produced by task 'd'" in joined
    assert "task 'f', field 'resources.timeout_s': timeout_s 1000 exceeds the function limit of 900 s" in joined
    assert "task 'f', field 'resources.memory_mb': memory_mb 20000 exceeds the function limit" in joined
    assert len(found) == 8


def test_container_placement_lifts_function_limits() -> None:
    assert messages([{"id": "f", "command": ["true"], "placement": "container",
                      "resources": {"timeout_s": 7200, "memory_mb": 20000}}]) == []


def test_validate_raises_with_every_problem_listed() -> None:
    with pytest.raises(WorkflowError) as exc:
        validate(wf([{"id": "a", "command": ["true"], "after": ["x", "y"]}]), "w.json")
    assert len(exc.value.problems) == 2
    assert str(exc.value).startswith("w.json: workflow is invalid (2 problem(s)):")


def test_shape_errors_name_task_and_field() -> None:
    with pytest.raises(WorkflowError) as exc:
        wf([{"id": "a", "command": "echo hi", "retries": "3", "resources": {"memory_mb": "big"}}])
    text = str(exc.value)
    assert "task 'a', field 'command': 'command' is an argv list; use 'shell'" in text
    assert "task 'a', field 'retries': must be a whole number" in text
    assert "task 'a', field 'resources.memory_mb': must be a number" in text


def test_task_limit_is_configurable() -> None:
    w = wf([{"id": f"t{i}", "command": ["true"]} for i in range(11)])
    assert "the workflow has 11 tasks; the limit is 10" in str(problems(w, max_tasks=10)[0])


def test_ids_with_slash_or_space_are_rejected() -> None:
    found = messages([{"id": "a/b", "command": ["true"]}, {"id": "c d", "command": ["true"]}])
    assert len(found) == 2 and all("may not contain" in m for m in found)


def test_shape_problems_come_with_every_other_problem_in_one_pass() -> None:
    with pytest.raises(WorkflowError) as exc:
        wf([{"id": "a", "command": [], "after": ["nope"], "placement": "x"}, {"id": "a", "command": ["true"]}])
    text = str(exc.value)
    assert "task 'a', field 'placement': must be one of" in text  # the shape problem
    assert "task 'a', field 'id': duplicate task id" in text  # and the graph's, found with it
    assert "task 'a', field 'after': 'after' names unknown task 'nope'" in text
    assert "field 'command'" in text
    assert len(exc.value.problems) == 4


def test_a_field_named_for_its_shape_is_not_named_again() -> None:
    with pytest.raises(WorkflowError) as exc:
        wf([{"id": "a", "command": "echo hi"}])  # the reader's problem; validation would add "needs a command"
    assert [(p.task_id, p.field) for p in exc.value.problems] == [("a", "command")]


def test_another_format_tag_and_nulls_are_refused() -> None:
    with pytest.raises(WorkflowError) as exc:
        native.from_data({"format": "updraft/v2", "name": None, "defaults": {"placement": None},
                          "tasks": [{"id": "a", "command": ["true"], "placement": None}]})
    assert [(p.task_id, p.field) for p in exc.value.problems] == [
        (None, "name"), (None, "format"), (None, "defaults.placement"), ("a", "placement")]
    assert "not 'updraft/v2'" in str(exc.value) and "must not be null" in str(exc.value)


def test_a_file_written_into_another_tasks_folder_by_an_unrelated_task_is_refused() -> None:
    found = problems(wf([{"id": "a", "command": ["true"], "outputs": ["d"]},
                         {"id": "b", "command": ["true"], "outputs": ["d/sub/x", "e"]}]))
    assert [str(p) for p in found] == [
        "task 'b', field 'outputs': output 'd/sub/x' is inside folder 'd', an output of task 'a', "
        "which this task does not come after; make 'd/sub/x' an output of 'a', or have this task "
        "read 'd' (or add 'after')"]


def test_a_folder_with_its_files_listed_and_a_later_task_adding_to_it_is_valid() -> None:
    # Makeflow's dirs_05 and dirs_07: `mydir mydir/1.txt: input` then `mydir/3.txt: mydir/1.txt`
    assert problems(wf([{"id": "a", "command": ["true"], "outputs": ["d", "d/1.txt", "d/sub"]},
                        {"id": "b", "command": ["true"], "inputs": ["d/1.txt"], "outputs": ["d/3.txt"]},
                        {"id": "c", "command": ["true"], "after": ["b"], "outputs": ["d/sub/4.txt"]}])) == []


def test_a_task_reading_a_file_inside_a_produced_folder_depends_on_its_producer() -> None:
    w = wf([{"id": "a", "command": ["true"], "outputs": ["d"]},
            {"id": "b", "command": ["true"], "inputs": ["d/sub/x", "ext/y"], "outputs": ["e"]}])
    assert build_graph(w).parents["b"] == ("a",)
    assert external_inputs(w) == ["ext/y"]


@pytest.mark.parametrize("escape", ["\\udcff", "\\ud800", "\\ud800x", "x\\uDFFF"])
def test_half_a_surrogate_pair_is_not_unicode(escape: str) -> None:
    text = '{"tasks": [{"id": "a", "command": ["echo", "' + escape + '"]}]}'
    for read in (loads, native.parse):
        with pytest.raises(FormatError, match="half of a UTF-16 surrogate pair"):
            read(text)
    assert loads('{"tasks": [{"id": "a", "command": ["echo", "\\ud83d\\ude00"]}]}').tasks[0].command[1] == "\U0001F600"


def test_a_file_that_cannot_be_read_or_is_a_folder_is_named(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from chalicelib.workflow import formats

    folder = tmp_path
    with pytest.raises(FormatError, match="is a folder, not a workflow file"):
        formats.load(str(folder))
    wf_file = folder / "wf.json"
    wf_file.write_text('{"tasks": [{"id": "a", "command": ["true"]}]}')

    def unreadable(*_a: object, **_k: object) -> None:
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(formats, "open", unreadable, raising=False)
    with pytest.raises(FormatError, match="cannot be read: Permission denied"):
        formats.load(str(wf_file))
