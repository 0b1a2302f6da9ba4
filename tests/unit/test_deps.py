"""A task's `deps`: parsed once, when the workflow is read, into `Dep` values that validation,
the local runtime, the runner and the cache all read; the native format writes each back as it
was written."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from chalicelib.cache.stage import dep_hashes
from chalicelib.errors import WorkflowError
from chalicelib.workflow.formats import native
from chalicelib.workflow.model import Dep
from chalicelib.workflow.validate import validate


@pytest.mark.parametrize(("entry", "name", "source", "named"), [
    ("ref=refdata", "ref", "refdata", True),
    ("db=/opt/blast/db", "db", "/opt/blast/db", True),
    ("tools/", "tools", "tools/", False),  # SOURCE alone: named by its basename
    ("lib/helper.sh", "helper.sh", "lib/helper.sh", False),
    ("s3://bucket/a=b", "a=b", "s3://bucket/a=b", False),  # a '=' after '://' is the URI's
    ("x=s3://bucket/k", "x", "s3://bucket/k", True),
])
def test_an_entry_parses_into_its_name_and_source(entry: str, name: str, source: str, named: bool) -> None:
    dep = Dep.parse(entry)
    assert (dep.name, dep.source, dep.named) == (name, source, named)
    assert dep.spelling == entry == str(dep)
    assert dep.is_uri == ("://" in source)


def _doc(deps: list[str], defaults: list[str] | None = None) -> dict[str, object]:
    doc: dict[str, object] = {"format": "updraft/v1", "name": "deps", "tasks": [
        {"id": "a", "command": ["true"], "outputs": ["out"], "deps": deps}]}
    if defaults is not None:
        doc["defaults"] = {"deps": defaults}
    return doc


def test_the_native_format_reads_typed_deps_and_writes_them_back_unchanged() -> None:
    doc = _doc(["ref=refdata", "tools/", "s3://bucket/a=b"], defaults=["db=blastdb"])
    wf = native.from_data(doc)
    assert wf.tasks[0].deps == (Dep("db", "blastdb"), Dep("ref", "refdata"),
                                Dep("tools", "tools/", named=False), Dep("a=b", "s3://bucket/a=b", named=False))
    written = native.to_data(wf)
    assert written["tasks"][0]["deps"] == ["db=blastdb", "ref=refdata", "tools/", "s3://bucket/a=b"]  # type: ignore[index]
    again = native.dump(native.from_data(json.loads(native.dump(wf))))
    assert again == native.dump(wf)  # `updraft convert` of a converted file changes nothing


@pytest.mark.parametrize(("entry", "why"), [
    ("../tools=tooldir", "contains '..'"),
    ("=tooldir", "path is empty"),
    ("ref=", "a dependency needs a source"),
    ("/abs/name=tooldir", "is absolute"),
])
def test_a_malformed_dep_is_refused_naming_the_task_and_the_entry(entry: str, why: str) -> None:
    with pytest.raises(WorkflowError) as caught:
        validate(native.from_data(_doc(["ok=fine", entry])))
    problems = caught.value.problems
    assert len(problems) == 1, problems
    assert (problems[0].task_id, problems[0].field) == ("a", "deps")
    assert f"dependency {entry!r}" in problems[0].message and why in problems[0].message


def test_the_cache_hashes_deps_by_the_names_they_are_staged_at(tmp_path: Path) -> None:
    (tmp_path / "tooldir").mkdir()
    (tmp_path / "tooldir" / "run.sh").write_text("echo hi\n")
    (tmp_path / "ref.fa").write_text(">x\nACGT\n")
    deps = (Dep("tools", str(tmp_path / "tooldir")), Dep.parse(str(tmp_path / "ref.fa")))
    hashes = dep_hashes(deps)
    assert sorted(hashes) == ["ref.fa", "tools/run.sh"]
