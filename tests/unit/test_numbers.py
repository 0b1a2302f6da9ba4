"""Non-finite and overflowing numbers (issue 22, D2): in every reader they are problems naming
the task and field - never a ValueError or OverflowError - and plan, simulate and replay
cap or refuse what would overflow their arithmetic."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import event, given, settings
from hypothesis import strategies as st

from chalicelib.errors import ConfigError, WorkflowError
from chalicelib.planner import perf_model
from chalicelib.planner.planner import Objective, Planner
from chalicelib.planner.platform import Platform
from chalicelib.planner.simulator import simulate
from chalicelib.workflow import formats
from chalicelib.workflow.formats.makeflow_json import load_jx_text
from chalicelib.workflow.model import Resources, Task, Workflow
from chalicelib.workflow.replay import to_replay
from chalicelib.workflow.validate import problems, validate

MAX_SECONDS = 366 * 86_400.0  # numbers.MAX_SECONDS

# JSON text as Python's json reads it: NaN and Infinity literals, 1e400 (infinity), 10**400
# (an int no float holds), 5,000 digits (more than int() converts)
BAD = ["NaN", "Infinity", "-Infinity", "1e400", "-1e400", "1" + "0" * 400, "9" * 5000]


def fill(template: str, *values: str) -> str:
    """`template` with each "%s" replaced by the next value (JSON is full of braces)."""
    for value in values:
        template = template.replace("%s", value, 1)
    return template


def native(field: str, value: str) -> str:
    return {
        "resources.memory_mb": '{"tasks":[{"id":"a","shell":"true","resources":{"memory_mb":%s}}]}',
        "resources.cpus": '{"tasks":[{"id":"a","shell":"true","resources":{"cpus":%s}}]}',
        "resources.disk_mb": '{"tasks":[{"id":"a","shell":"true","resources":{"disk_mb":%s}}]}',
        "resources.timeout_s": '{"tasks":[{"id":"a","shell":"true","resources":{"timeout_s":%s}}]}',
        "defaults.resources.memory_mb": '{"defaults":{"resources":{"memory_mb":%s}},'
                                        '"tasks":[{"id":"a","shell":"true"}]}',
        "hints.runtime_s": '{"tasks":[{"id":"a","shell":"true","hints":{"runtime_s":%s}}]}',
        "hints.size:o": '{"tasks":[{"id":"a","shell":"true","outputs":["o"],"hints":{"size:o":%s}}]}',
    }[field].replace("%s", value)


NATIVE_FIELDS = ["resources.memory_mb", "resources.cpus", "resources.disk_mb", "resources.timeout_s",
                 "defaults.resources.memory_mb", "hints.runtime_s", "hints.size:o"]


def problems_of(text: str, fmt: str | None = None) -> list[Any]:
    with pytest.raises(WorkflowError) as err:
        validate(formats.loads(text, fmt=fmt))
    return err.value.problems


@pytest.mark.parametrize("value", BAD)
@pytest.mark.parametrize("field", NATIVE_FIELDS)
def test_native_numbers_that_are_not_finite_are_problems_naming_task_and_field(field: str, value: str) -> None:
    found = problems_of(native(field, value))
    if value == BAD[-1]:  # not readable at all: one problem about the number, no field to name
        assert "digits" in found[0].message
        return
    assert [(p.task_id, p.field) for p in found] == [(None if field.startswith("defaults") else "a", field)], found
    assert "finite" in found[0].message


@pytest.mark.parametrize("field", ["hints.runtime_s", "resources.timeout_s"])
def test_huge_but_finite_times_are_refused(field: str) -> None:
    text = native(field, "1e308").replace('"shell"', '"placement":"container","shell"')
    found = problems_of(text)
    assert any(p.field == field and p.task_id == "a" for p in found), found


def wfcommons(runtime: str = "1", size: str = "1", cores: str = "1", memory: str = "1") -> str:
    return fill('{"name":"x","schemaVersion":"1.4","workflow":{"tasks":[{"name":"a","runtime":%s,"cores":%s,'
            '"memory":%s,"files":[{"name":"f.txt","link":"output","size":%s}]}]}}', runtime, cores, memory, size)


def wfcommons15(size: str) -> str:
    return fill('{"name":"x","schemaVersion":"1.5","workflow":{"specification":{"tasks":[{"id":"a","inputFiles":[],'
            '"outputFiles":["f"],"parents":[]}],"files":[{"id":"f","sizeInBytes":%s}]},'
            '"execution":{"tasks":[{"id":"a","runtimeInSeconds":1}]}}}', size)


@pytest.mark.parametrize("value", [*BAD[:-1], "1e308"])
@pytest.mark.parametrize("what", ["runtime", "size", "memory", "cores", "size 1.5"])
def test_wfcommons_numbers_that_are_not_finite_are_problems(what: str, value: str) -> None:
    text = wfcommons15(value) if what == "size 1.5" else wfcommons(**{what: value})
    found = problems_of(text)
    assert len(found) == 1, found
    assert found[0].field and found[0].field.split(".")[0] in {
        "runtime": {"runtime"}, "size": {"files[0]"}, "memory": {"memory"}, "cores": {"cores"},
        "size 1.5": {"files['f']"}}[what], found


@pytest.mark.parametrize("value", BAD[:-1])
def test_makeflow_json_and_make_syntax_refuse_non_finite_resources(value: str) -> None:
    found = problems_of(fill('{"rules":[{"command":"true","outputs":["o"],"resources":{"memory":%s}}]}', value))
    assert any("resources.memory" in p.message and "finite" in p.message for p in found), found
    make = value.replace("Infinity", "inf").replace("NaN", "nan")
    found = problems_of(f"MEMORY={make}\no:\n\ttouch o\n", fmt="makeflow")
    assert any("MEMORY" in p.message for p in found), found


@pytest.mark.parametrize("expr", ["1e300*1e300", "1e400", "9" * 5000, "floor(1e300*1e10)", "9" * 300 + "*" + "9" * 300])
def test_jx_arithmetic_that_overflows_is_a_problem(expr: str) -> None:
    text = fill('{"define":{"m":%s},"rules":[{"command":"true","outputs":["o"],"resources":{"memory":m}}]}', expr)
    with pytest.raises(WorkflowError) as err:
        load_jx_text(text)
    assert "line 1" in str(err.value)


@pytest.mark.parametrize("value", ["NaN", "Infinity", "1e400"])
def test_hyperflow_arguments_that_are_not_finite_are_problems(value: str) -> None:
    text = fill('{"processes":[{"name":"p","function":"command","config":{"executor":{"executable":"echo",'
            '"args":[%s]}},"ins":[],"outs":[0]}],"signals":[{"name":"o.txt"}],"ins":[],"outs":[0]}', value)
    found = problems_of(text)
    assert [(p.task_id, p.field) for p in found] == [("p", "config.executor.args")], found


def test_validation_of_a_model_built_in_code_never_raises_on_numbers() -> None:
    task = Task(id="a", shell="true", resources=Resources(memory_mb=10**400, cpus=float("nan")),
                hints={"runtime_s": float("inf"), "size:x": 10**400, "threads": float("-inf")})
    found = {p.field for p in problems(Workflow("w", (task,)))}
    assert {"resources.memory_mb", "resources.cpus", "hints.runtime_s", "hints.size:x", "hints.threads"} <= found


def test_a_negative_recorded_number_still_falls_back_to_the_default() -> None:
    workflow = validate(formats.loads(wfcommons(runtime="-1")))
    assert "runtime_s" not in workflow.tasks[0].hints and "not a usable number" in workflow.description


def test_number_helpers() -> None:
    from chalicelib.workflow.numbers import MAX_SECONDS as max_seconds
    from chalicelib.workflow.numbers import finite, number_problem

    assert max_seconds == MAX_SECONDS
    assert finite(True) is None and finite(10**400) is None and finite(float("nan")) is None
    assert finite(3) == 3.0
    assert number_problem(10**400) is not None and "too large" in str(number_problem(10**400))
    assert number_problem(2.0, 0.0, 1.0) == "must be at most 1, got 2"


# ---- plan, simulate, replay: nothing overflows ---------------------------------------------------

def extreme() -> Workflow:
    """Every hint at its bound: what validation lets through must not break the planner."""
    top = {"runtime_s": MAX_SECONDS, "size:o": 2.0**60, "memory_bytes": 2.0**60, "threads": 1e18, "avg_cpu": 1e18}
    data = {"tasks": [
        {"id": "a", "shell": "true", "outputs": ["o"], "placement": "auto", "hints": top,
         "resources": {"timeout_s": MAX_SECONDS}},
        {"id": "b", "shell": "true", "inputs": ["o"], "placement": "auto",
         "hints": {"runtime_s": MAX_SECONDS, "bytes_in": 1e18}},
    ]}
    return validate(formats.loads(json.dumps(data)))


def test_plan_and_simulate_finish_on_the_largest_valid_numbers() -> None:
    workflow = extreme()
    planner = Planner(workflow, perf_model(history=None), Platform())
    plan = planner.plan(Objective.of("cost", None, None))  # a 1 EiB peak wants more than 120 GB: at risk, no error
    assert plan.makespan_s > 0 and plan.cost.total > 0
    result = simulate(workflow, plan, Platform(), planner.perf)
    assert result.to_dict()


def test_a_task_that_runs_for_a_year_is_simulated_to_the_end() -> None:
    """Every minute of simulated time was a sweep step: a year-long task used to run out of
    the step budget ("a bug: please report it")."""
    task = {"id": "a", "shell": "true", "placement": "container",
            "resources": {"timeout_s": 31_000_000}, "hints": {"runtime_s": 30_000_000}}
    workflow = validate(formats.loads(json.dumps({"tasks": [task]})))
    out = simulate(workflow, None, Platform()).to_dict()
    assert out["state"] == "SUCCEEDED" and out["makespan_s"] >= 30_000_000


@pytest.mark.parametrize("noise", [float("nan"), float("inf"), -1.0, 1e308])
def test_simulation_noise_must_be_a_sane_sigma(noise: float) -> None:
    workflow = validate(formats.loads('{"tasks":[{"id":"a","shell":"true"}]}'))
    with pytest.raises(ConfigError, match="noise"):
        simulate(workflow, None, Platform(), noise=noise)


@pytest.mark.parametrize(("time_scale", "size_scale", "what"), [(1e300, None, "time-scale"),
                                                                 (None, 1e300, "size-scale"),
                                                                 (1e308, 1e308, "time-scale")])
def test_replay_refuses_scales_that_overflow(time_scale: float | None, size_scale: float | None, what: str) -> None:
    with pytest.raises(ConfigError, match=what):
        to_replay(extreme(), time_scale, size_scale)


@pytest.mark.parametrize("memory", [float("inf"), float("nan"), 1e300, 10**400])
def test_a_plan_file_with_numbers_out_of_range_is_refused(memory: float) -> None:
    from chalicelib.planner.plans import Plan

    data = {"format": "updraft-plan/v1", "name": "p", "choices": {"a": {"placement": "container",
                                                                        "memory_mb": memory, "cpus": 1.0}}}
    with pytest.raises(WorkflowError, match="memory_mb"):
        Plan.from_dict(data, "plan.json")


def test_history_lines_with_numbers_out_of_range_are_skipped(tmp_path: Any) -> None:
    from chalicelib.planner.history import JsonlHistoryStore

    good = {"task_type": "t", "env": "local", "duration_s": 2.0, "memory_mb": 128}
    lines = [json.dumps(good)] + [
        json.dumps({**good, key: value}) for key, value in (("duration_s", float("nan")), ("duration_s", 1e308),
                                                            ("memory_mb", float("inf")), ("bytes_in", 10**400),
                                                            ("peak_rss_mb", -1.0))]
    path = tmp_path / "history.jsonl"
    path.write_text("\n".join(lines) + "\n")
    assert [s.duration_s for s in JsonlHistoryStore(str(path)).samples()] == [2.0]
    workflow = validate(formats.loads('{"tasks":[{"id":"a","shell":"true","type":"t"}]}'))
    planner = Planner(workflow, perf_model(history=str(path)), Platform())
    assert planner.plan(Objective.of("cost", None, None)).makespan_s > 0


@pytest.mark.parametrize("command", ["validate", "plan", "simulate", "run --replay", "run"])
@pytest.mark.parametrize("text", [
    '{"tasks":[{"id":"a","shell":"true","resources":{"memory_mb":NaN}}]}',
    '{"defaults":{"resources":{"cpus":Infinity}},"tasks":[{"id":"a","shell":"true"}]}',
    '{"tasks":[{"id":"a","shell":"true","hints":{"runtime_s":Infinity}}]}',
    '{"tasks":[{"id":"a","shell":"true","hints":{"runtime_s":1e308}},'
    '{"id":"b","shell":"true","after":["a"],"hints":{"runtime_s":1e308}}]}',
])
def test_the_issue_repros_exit_2_with_the_problem_not_a_traceback(
        tmp_path: Any, capsys: pytest.CaptureFixture[str], command: str, text: str) -> None:
    from chalicelib.cli import main

    path = tmp_path / "wf.json"
    path.write_text(text)
    argv = [*command.split(), str(path)]
    if command.startswith("run"):
        argv += ["--workdir", str(tmp_path / "wd")]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "field '" in err and ("task 'a'" in err or "defaults" in err) and "Traceback" not in err, err


numbers = (st.floats(allow_nan=True, allow_infinity=True) | st.integers(min_value=-(10**400), max_value=10**400)
           | st.sampled_from([1e308, 1e-308, 366 * 86_400.0, 2.0**60, 0, -1]))
sane = st.fixed_dictionaries({
    "memory_mb": st.integers(128, 10_240), "cpus": st.floats(0.25, 6.0), "disk_mb": st.integers(1, 10_240),
    "timeout_s": st.floats(1.0, 900.0), "runtime_s": st.floats(0.0, MAX_SECONDS), "size:o": st.floats(0.0, 2.0**60),
    "memory_bytes": st.floats(0.0, 2.0**60)})


@settings(max_examples=150, deadline=None)
@given(sane, st.dictionaries(st.sampled_from(["memory_mb", "cpus", "disk_mb", "timeout_s", "runtime_s", "size:o",
                                              "memory_bytes"]), numbers, max_size=2))
def test_any_numbers_either_fail_validation_or_plan_simulate_and_replay(
        good: dict[str, Any], odd: dict[str, Any]) -> None:
    """Property: whatever numbers a workflow holds, reading and validating it raises nothing but
    WorkflowError, and a workflow that validates is planned, simulated and replayed without
    an arithmetic error."""
    n = {**good, **odd}
    resources = {k: n[k] for k in ("memory_mb", "cpus", "disk_mb", "timeout_s")}
    hints = {k: n[k] for k in ("runtime_s", "size:o", "memory_bytes")}
    data = {"tasks": [
        {"id": "a", "shell": "true", "outputs": ["o"], "placement": "auto", "resources": resources, "hints": hints},
        {"id": "b", "shell": "true", "inputs": ["o"], "placement": "auto", "hints": {"runtime_s": n["runtime_s"]}},
    ]}
    try:
        workflow = validate(formats.loads(json.dumps(data)))  # NaN and Infinity as Python writes them
    except WorkflowError:
        event("refused")
        return
    planner = Planner(workflow, perf_model(history=None), Platform())
    plan = planner.plan(Objective.of("makespan", None, None))
    simulate(workflow, plan, Platform(), planner.perf)
    to_replay(workflow)
    event("planned, simulated and replayed")
