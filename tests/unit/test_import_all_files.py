"""Every file under shared/workflows imports with the right counts, or is rejected with its reason.

The counts in EXPECTED were written down by hand (the WfCommons ones are the README's table)
and are cross-checked below by independent few-line readings of the sources: plain json for
HyperFlow, WfFormat and Makeflow JSON, a naive line scan for make syntax. They never go
through the importers.
"""

from __future__ import annotations

import gzip
import json
import re
from pathlib import Path
from typing import Any

import pytest

from chalicelib.errors import WorkflowError
from chalicelib.workflow import formats
from chalicelib.workflow.formats.registry import detect
from chalicelib.workflow.graph import build_graph
from chalicelib.workflow.validate import validate

WORKFLOWS = Path(__file__).resolve().parents[2].parent / "shared" / "workflows"
MF = "makeflow/makeflow-examples"

# path -> (detected format, tasks, edges)
EXPECTED: dict[str, tuple[str, int, int]] = {
    "hyperflow/md-param-study.workflow.json": ("hyperflow", 4, 2),
    "hyperflow/montage-0.25-autoscaler.workflow.json": ("hyperflow", 44, 96),
    "hyperflow/montage143.workflow.json": ("hyperflow", 143, 351),
    "hyperflow/parallel-sleep3.workflow.json": ("hyperflow", 5, 6),
    "hyperflow/remote-jobs.workflow.json": ("hyperflow", 2, 0),
    f"{MF}/benchmark/benchmark.jx": ("makeflow-json", 100, 0),  # JX that is plain JSON
    f"{MF}/benchmark/benchmark.mf": ("makeflow", 100, 0),
    f"{MF}/blast/blast.json": ("makeflow-json", 23, 60),
    f"{MF}/blast/blast.jx": ("makeflow-jx", 23, 60),
    f"{MF}/blast/blast.mf": ("makeflow", 23, 60),
    f"{MF}/bwa/bwa.json": ("makeflow-json", 103, 300),
    f"{MF}/bwa/bwa.jx": ("makeflow-jx", 103, 300),
    f"{MF}/bwa/bwa.mf": ("makeflow", 14, 40),
    # 10 aln + 10 samse + 10 split + 4 x 100 per slice + 10 dict + 10 faidx + 100 calls;
    # edges: 10 + 10 + 100 x 4 chained + 4 x 100 into the calls
    f"{MF}/bwa-gatk/bwa-gatk.jx": ("makeflow-jx", 550, 820),
    f"{MF}/hecil/hecil.json": ("makeflow-json", 35, 84),
    f"{MF}/hecil/hecil.jx": ("makeflow-jx", 35, 84),
    f"{MF}/hecil/image.mf": ("makeflow", 34, 83),
    f"{MF}/hello-world/hello_world.jx": ("makeflow-json", 1, 0),
    f"{MF}/hello-world/hello_world.mf": ("makeflow", 1, 0),
    f"{MF}/lifemapper/image.mf": ("makeflow", 14, 13),
    f"{MF}/shakespeare/shakespeare.json": ("makeflow-json", 12, 19),
    f"{MF}/shakespeare/shakespeare.jx": ("makeflow-jx", 12, 19),
    f"{MF}/shakespeare/shakespeare.mf": ("makeflow", 12, 18),
    f"{MF}/shrimp/shrimp.jx": ("makeflow-jx", 764, 1524),
    f"{MF}/shrimp/shrimp.mf": ("makeflow", 764, 1524),
    f"{MF}/snpexp/snpexp.mf": ("makeflow", 32, 50),
    f"{MF}/ssaha/ssaha.json": ("makeflow-json", 102, 200),
    f"{MF}/ssaha/ssaha.jx": ("makeflow-jx", 102, 200),
    f"{MF}/ssaha/ssaha.mf": ("makeflow", 102, 200),
    "makeflow/wfcommons-makeflow-instances/blast/blast-chameleon-small-001.json":
        ("wfformat", 43, 120),
    "wfcommons/1000genome-chameleon-8ch-250k-001.json": ("wfformat", 328, 424),
    "wfcommons/blast-chameleon-small-001.json": ("wfformat", 43, 120),
    "wfcommons/epigenomics-chameleon-hep-2seq-50k-001.json": ("wfformat", 223, 274),
    "wfcommons/montage-chameleon-2mass-01d-001.json": ("wfformat", 103, 231),
    "wfcommons/montage-chameleon-dss-125d-001.json.gz": ("wfformat", 1066, 3012),
    "wfcommons/srasearch-chameleon-10a-001.json": ("wfformat", 22, 30),
}

NOT_A_WORKFLOW = "not a workflow in any known format"
# path -> every phrase the rejection must contain
REJECTED: dict[str, list[str]] = {
    "hyperflow/choice-join-merge.workflow.json": [
        "'WriteRandOuts'", "type 'choice'", "'ReadRandIns'", "type 'join'",
        "control signal 'mergesig'"],
    "hyperflow/sqrsum.workflow.json": [
        "'Sum'", "'square:3'", "count syntax", "'Sqr'", "a stream, not a DAG"],
    f"{MF}/lifemapper/lifemapper.jx": ["line 7", "listdir()", "jx2json"],
    "wfcommons/wfformat-1.5.schema.json": [NOT_A_WORKFLOW],
    "hyperflow/README.md": [NOT_A_WORKFLOW],
    "makeflow/README.md": [NOT_A_WORKFLOW],
    "wfcommons/README.md": [NOT_A_WORKFLOW],
    "hyperflow/LICENSE.hyperflow-MIT.txt": [NOT_A_WORKFLOW],
    "hyperflow/LICENSE.hyperflow-autoscaler-plugin-MIT.txt": [NOT_A_WORKFLOW],
    "makeflow/wfcommons-makeflow-instances/LICENSE.GPL-3.0.txt": [NOT_A_WORKFLOW],
    "wfcommons/LICENSE.WfInstances": [NOT_A_WORKFLOW],
}


# Suites run by tests of their own: Makeflow's regression tests (the TR table)
# and the CWL v1.2 conformance suite. Every other folder is accounted for file by file here.
OWN_SUITES = ("cctools-makeflow", "cwl-v1.2")


def test_every_shared_file_is_accounted_for(shared_workflows: Path) -> None:
    present = {p.relative_to(shared_workflows).as_posix()
               for p in shared_workflows.rglob("*")
               if p.is_file() and p.relative_to(shared_workflows).parts[0] not in OWN_SUITES}
    assert present == set(EXPECTED) | set(REJECTED)


@pytest.mark.parametrize("rel", sorted(EXPECTED))
def test_imports_with_expected_counts(shared_workflows: Path, rel: str) -> None:
    path = shared_workflows / rel
    fmt, tasks, edges = EXPECTED[rel]
    assert detect(formats.read_text(str(path))) == fmt
    wf = validate(formats.load(str(path)))
    assert (len(wf.tasks), build_graph(wf).edge_count) == (tasks, edges)
    assert formats.load(str(path), fmt) == wf  # --format names the same reader


@pytest.mark.parametrize("rel", sorted(REJECTED))
def test_rejected_with_reason(shared_workflows: Path, rel: str) -> None:
    with pytest.raises(WorkflowError) as err:
        formats.load(str(shared_workflows / rel))
    for phrase in REJECTED[rel]:
        assert phrase in str(err.value)


# -- independent counts ------------------------------------------------------------------------


def _json(path: Path) -> Any:
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt") as fh:
        return json.load(fh)


def _pairs_from_files(nodes: list[tuple[list[str], list[str]]]) -> set[tuple[int, int]]:
    """(producer, consumer) index pairs for nodes given as (inputs, outputs)."""
    producer = {f: i for i, (_, outs) in enumerate(nodes) for f in outs}
    return {(producer[f], i) for i, (ins, _) in enumerate(nodes)
            for f in ins if f in producer and producer[f] != i}


def _count_hyperflow(path: Path) -> tuple[int, int]:
    data = _json(path)
    procs = data["processes"]
    nodes = [([str(x) for x in p.get("ins", [])], [str(x) for x in p.get("outs", [])])
             for p in procs]
    return len(procs), len(_pairs_from_files(nodes))


def _count_wfformat(path: Path) -> tuple[int, int]:
    wf = _json(path)["workflow"]
    if "specification" in wf:
        tasks = wf["specification"]["tasks"]
        key, nodes = "id", [(t["inputFiles"], t["outputFiles"]) for t in tasks]
    else:
        tasks = wf["tasks"]
        key = "name"
        nodes = [([f["name"] for f in t["files"] if f["link"] == "input"],
                  [f["name"] for f in t["files"] if f["link"] == "output"]) for t in tasks]
    index = {t[key]: i for i, t in enumerate(tasks)}
    parents = {(index[p], i) for i, t in enumerate(tasks) for p in t["parents"]}
    return len(tasks), len(parents | _pairs_from_files(nodes))


def _count_makeflow_json(path: Path) -> tuple[int, int]:
    def name(f: Any) -> str:
        text = f if isinstance(f, str) else f["name"]
        return text[2:] if text.startswith("./") else text

    rules = _json(path)["rules"]
    nodes = [([name(f) for f in r.get("inputs", [])],
              [name(f) for f in r.get("outputs", r.get("output", []))]) for r in rules]
    return len(rules), len(_pairs_from_files(nodes))


def _count_make(path: Path) -> tuple[int, int]:
    """Naive: a rule is a `targets : sources` line; `$X` is replaced from `X=value` lines."""
    variables: dict[str, str] = {}
    nodes: list[tuple[list[str], list[str]]] = []
    for line in path.read_text().splitlines():
        if line.startswith(("\t", " ", "#")) or not line.strip():
            continue
        assignment = re.match(r"^(\w+)=(.*)$", line)
        if assignment:
            variables[assignment[1]] = assignment[2].strip()
        elif ":" in line:
            targets, sources = line.split(":", 1)

            def sub(word: str) -> str:
                return variables.get(word[1:], word) if word.startswith("$") else word

            nodes.append(([sub(w) for w in sources.split("#")[0].split()],
                          [sub(w) for w in targets.split()]))
    return len(nodes), len(_pairs_from_files(nodes))


# A JX template and the file Makeflow's authors expanded it into (same parameters).
_JX_TWIN = {
    f"{MF}/blast/blast.jx": f"{MF}/blast/blast.json",
    f"{MF}/bwa/bwa.jx": f"{MF}/bwa/bwa.json",
    f"{MF}/hecil/hecil.jx": f"{MF}/hecil/hecil.json",
    f"{MF}/shakespeare/shakespeare.jx": f"{MF}/shakespeare/shakespeare.json",
    f"{MF}/ssaha/ssaha.jx": f"{MF}/ssaha/ssaha.json",
    f"{MF}/shrimp/shrimp.jx": f"{MF}/shrimp/shrimp.mf",
}


def _independent(rel: str, fmt: str) -> tuple[int, int] | None:
    counters = {"hyperflow": _count_hyperflow, "wfformat": _count_wfformat,
                "makeflow": _count_make, "makeflow-json": _count_makeflow_json}
    if fmt == "makeflow-jx":
        twin = _JX_TWIN.get(rel)
        return _independent(twin, EXPECTED[twin][0]) if twin else None
    return counters[fmt](WORKFLOWS / rel)


@pytest.mark.parametrize("rel", sorted(EXPECTED))
def test_expected_counts_match_an_independent_reading(shared_workflows: Path, rel: str) -> None:
    fmt, tasks, edges = EXPECTED[rel]
    counted = _independent(rel, fmt)
    if counted is None:
        pytest.skip("no expanded twin of this JX file: counted by hand (see EXPECTED)")
    assert counted == (tasks, edges)


@pytest.mark.parametrize(("data", "expected"), [
    ({"task": [{"id": "a", "command": ["true"]}]}, "looks like the native format but has 'task' where 'tasks'"),
    ({"process": [], "signals": []}, "looks like the HyperFlow format but has 'process' where 'processes'"),
    ({"workflow": {"taks": []}}, "looks like the WfCommons format but has 'workflow.taks' where 'workflow.tasks'"),
    ({"rule": []}, "looks like the Makeflow JSON format but has 'rule' where 'rules'"),
    ({"cwlversion": "v1.2"}, "looks like a CWL document but has 'cwlversion' where 'cwlVersion'"),
])
def test_a_near_miss_names_the_format_and_the_misspelt_key(data: dict, expected: str) -> None:
    with pytest.raises(WorkflowError) as info:
        formats.loads(json.dumps(data), "wf.json")
    assert expected in str(info.value)


def test_no_near_miss_keeps_the_general_message() -> None:
    with pytest.raises(WorkflowError) as info:
        formats.loads(json.dumps({"x": 1}), "wf.json")
    assert NOT_A_WORKFLOW in str(info.value) and "looks like" not in str(info.value)


def test_a_json_file_that_is_no_workflow_is_not_taken_for_a_near_miss() -> None:
    for data in ({"name": "pkg", "version": "1.0", "scripts": {}, "default": 1}, {"input": "x", "task_id": "y"}):
        with pytest.raises(WorkflowError) as info:
            formats.loads(json.dumps(data), "config.json")
        assert "looks like" not in str(info.value), data
