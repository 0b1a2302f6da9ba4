"""`updraft resume` honours what the run was made with: its options, and an edited file.

Issue 27: after fixing a typo in the workflow file, `resume` re-ran the old command and said
nothing, and dropped `--no-cache`. Real runs through the CLI.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from tests.e2e.cli import run_json, status, updraft, write_workflow


def _pipeline(tmp: Path, ledger: Path, typo: bool) -> Path:
    """prep -> fix -> use, and an independent side task; `fix` fails while it has the typo."""
    fix = "cat prep.txt missing-typo.txt > fixed.txt" if typo else "cat prep.txt > fixed.txt"
    return write_workflow(tmp / "wf.json", [
        {"id": "prep", "shell": f"echo prep >> {ledger}; echo hello > prep.txt", "outputs": ["prep.txt"]},
        {"id": "side", "shell": f"echo side >> {ledger}; echo side > side.txt", "outputs": ["side.txt"]},
        {"id": "fix", "shell": f"echo fix >> {ledger}; {fix}", "inputs": ["prep.txt"], "outputs": ["fixed.txt"]},
        {"id": "use", "shell": f"echo use >> {ledger}; wc -c < fixed.txt > used.txt", "inputs": ["fixed.txt"],
         "outputs": ["used.txt"]},
    ])


def _count(ledger: Path, name: str) -> int:
    return ledger.read_text().split().count(name)


def _runs(wd: Path) -> list[dict[str, Any]]:
    return list(json.loads(updraft("runs", "--json", workdir=wd, check=True).stdout))


def test_resume_runs_the_edited_file_and_reuses_unchanged_tasks(tmp_path: Path) -> None:
    ledger, wd = tmp_path / "ledger", tmp_path / "wd"
    wf = _pipeline(tmp_path, ledger, typo=True)
    code, first = run_json(wf, wd)
    assert code == 1 and first["state"] == "FAILED"
    _pipeline(tmp_path, ledger, typo=False)  # the user fixes the typo in the file

    resumed = updraft("resume", first["run_id"], "--json", workdir=wd)
    assert resumed.returncode == 0, resumed.stderr
    out = json.loads(resumed.stdout.strip().splitlines()[-1])
    assert out["state"] == "SUCCEEDED" and out["run_id"] != first["run_id"]
    assert out["resumed_from"] == first["run_id"]
    assert f"{wf} changed since run {first['run_id']}" in resumed.stderr
    assert f"new run {out['run_id']}" in resumed.stderr
    # the unchanged tasks that succeeded were not executed again: memo hits in the new run
    assert _count(ledger, "prep") == 1 and _count(ledger, "side") == 1
    assert _count(ledger, "fix") == 2 and _count(ledger, "use") == 1
    st = status(out["run_id"], wd)
    states = {t["id"]: t["state"] for t in st["tasks"]}
    assert states == {"prep": "CACHED", "side": "CACHED", "fix": "SUCCEEDED", "use": "SUCCEEDED"}
    assert st["cache"]["memo_hits"] == 2
    new = next(r for r in _runs(wd) if r["run_id"] == out["run_id"])
    assert new["options"]["submitted"]["resumed_from"] == first["run_id"]


def test_resume_stored_replays_the_old_spec_and_says_how_to_run_the_edit(tmp_path: Path) -> None:
    ledger, wd = tmp_path / "ledger", tmp_path / "wd"
    wf = _pipeline(tmp_path, ledger, typo=True)
    _, first = run_json(wf, wd)
    _pipeline(tmp_path, ledger, typo=False)

    replayed = updraft("resume", first["run_id"], "--stored", "--json", workdir=wd)
    assert replayed.returncode == 1
    out = json.loads(replayed.stdout.strip().splitlines()[-1])
    assert out["run_id"] == first["run_id"] and out["state"] == "FAILED"  # the old command, in place
    assert "replaying the run as submitted" in replayed.stderr
    assert f"`updraft resume {first['run_id']}`" in replayed.stderr
    attempts = {t["id"]: t["attempts"] for t in status(first["run_id"], wd)["tasks"]}
    assert attempts["fix"] == 2 and attempts["prep"] == 1 and _count(ledger, "prep") == 1
    assert len(_runs(wd)) == 1


def test_resume_of_an_unchanged_file_resumes_in_place_silently(tmp_path: Path) -> None:
    ledger, wd = tmp_path / "ledger", tmp_path / "wd"
    wf = _pipeline(tmp_path, ledger, typo=True)
    _, first = run_json(wf, wd)
    again = updraft("resume", first["run_id"], workdir=wd)
    assert again.returncode == 1 and "changed since" not in again.stderr and len(_runs(wd)) == 1


def test_resume_keeps_no_cache_and_a_flag_overrides_it(tmp_path: Path) -> None:
    """A memoized result exists for `flaky`; the run made with --no-cache must not use it on
    resume (today's code dropped --no-cache, so the result was reused)."""
    ledger, flag, wd = tmp_path / "ledger", tmp_path / "flag", tmp_path / "wd"
    wf = write_workflow(tmp_path / "f.json", [
        {"id": "flaky", "shell": f"echo flaky >> {ledger}; test -e {flag} && echo x > o.txt",
         "outputs": ["o.txt"]}])
    flag.write_text("")
    assert run_json(wf, wd)[0] == 0  # memoizes flaky's result
    flag.unlink()
    code, first = run_json(wf, wd, "--no-cache", "--concurrency", "1", "--emulate-lambda")
    assert code == 1 and _count(ledger, "flaky") == 2
    opts = next(r for r in _runs(wd) if r["run_id"] == first["run_id"])["options"]["submitted"]["options"]
    assert opts == {"no_cache": True, "concurrency": 1, "emulate_lambda": True}
    flag.write_text("")

    kept = updraft("resume", first["run_id"], "--json", workdir=wd)
    assert kept.returncode == 0, kept.stderr
    assert _count(ledger, "flaky") == 3  # ran again: --no-cache was kept
    assert "overrides" not in kept.stderr

    flag.unlink()
    code, second = run_json(wf, wd, "--no-cache", "--emulate-lambda")
    assert code == 1 and _count(ledger, "flaky") == 4
    overridden = updraft("resume", second["run_id"], "--cache", "--no-emulate-lambda", workdir=wd)
    assert overridden.returncode == 0, overridden.stderr  # the memoized result stands in: no flag needed
    assert _count(ledger, "flaky") == 4
    assert "--cache given: overrides the run's --no-cache" in overridden.stderr
    assert "--no-emulate-lambda given: overrides the run's --emulate-lambda" in overridden.stderr


def test_resume_reload_without_a_recorded_file_is_one_clear_error(tmp_path: Path) -> None:
    ledger, wd = tmp_path / "ledger", tmp_path / "wd"
    wf = _pipeline(tmp_path, ledger, typo=True)
    _, first = run_json(wf, wd)
    wf.unlink()
    gone = updraft("resume", first["run_id"], "--reload", workdir=wd)
    assert gone.returncode == 2 and "is gone" in gone.stderr and "Traceback" not in gone.stderr
    replay = updraft("resume", first["run_id"], workdir=wd)  # the default replays, and says why
    assert replay.returncode == 1 and "is gone: resuming the run as it was submitted" in replay.stderr


def test_a_resume_from_the_sdk_or_dashboard_keeps_no_cache_too(tmp_path: Path) -> None:
    """The local server's executor (the dashboard's Resume button, the SDK's resume) runs the
    run with the options `updraft run` stored, not its defaults."""
    from updraft import Client

    ledger, flag, wd = tmp_path / "ledger", tmp_path / "flag", tmp_path / "wd"
    wf = write_workflow(tmp_path / "f.json", [
        {"id": "flaky", "shell": f"echo flaky >> {ledger}; test -e {flag} && echo x > o.txt",
         "outputs": ["o.txt"]}])
    flag.write_text("")
    assert run_json(wf, wd)[0] == 0  # memoizes flaky's result
    flag.unlink()
    code, first = run_json(wf, wd, "--no-cache")
    assert code == 1 and _count(ledger, "flaky") == 2
    flag.write_text("")
    client = Client(workdir=str(wd))
    client.resume(first["run_id"])
    assert client.wait(first["run_id"], timeout=60)["state"] == "SUCCEEDED"
    assert _count(ledger, "flaky") == 3  # it ran: the stored --no-cache held, the memo was not used


def test_an_edit_that_breaks_the_file_is_refused_and_changes_nothing(tmp_path: Path) -> None:
    ledger, wd = tmp_path / "ledger", tmp_path / "wd"
    wf = _pipeline(tmp_path, ledger, typo=True)
    _, first = run_json(wf, wd)
    wf.write_text('{"name": "broken", "tasks": [{"id": "x"}]}')
    refused = updraft("resume", first["run_id"], workdir=wd)
    assert refused.returncode == 2 and "Traceback" not in refused.stderr and "task 'x'" in refused.stderr
    assert len(_runs(wd)) == 1 and status(first["run_id"], wd)["state"] == "FAILED"


def test_an_edited_file_supersedes_a_killed_run(tmp_path: Path) -> None:
    """A run whose process was killed (left RUNNING) and whose file was then edited: resume
    runs the edit as a new run and cancels the old one, so nothing is left RUNNING."""
    import os
    import signal
    import subprocess
    import sys
    import time

    from tests.e2e.cli import REPO

    ledger, wd = tmp_path / "ledger", tmp_path / "wd"
    tasks = [{"id": f"t{i}", "shell": f"echo t{i} >> {ledger}; sleep 0.3; echo {i} > o{i}", "outputs": [f"o{i}"],
              **({"inputs": [f"o{i - 1}"]} if i else {})} for i in range(6)]
    wf = write_workflow(tmp_path / "chain.json", tasks)
    proc = subprocess.Popen([sys.executable, "-m", "chalicelib.cli", "run", str(wf), "--workdir", str(wd)],
                            cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)},
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and (not ledger.exists() or len(ledger.read_text().split()) < 3):
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    old = _runs(wd)[0]["run_id"]
    assert status(old, wd)["state"] == "RUNNING"
    tasks[-1]["shell"] = tasks[-1]["shell"].replace("echo 5", "echo five")
    write_workflow(wf, tasks)
    resumed = updraft("resume", old, "--json", workdir=wd)
    assert resumed.returncode == 0, resumed.stderr
    new = json.loads(resumed.stdout.strip().splitlines()[-1])
    assert new["state"] == "SUCCEEDED" and status(old, wd)["state"] == "CANCELLED"
    done_before = [t for t in (f"t{i}" for i in range(5)) if _count(ledger, t) >= 1]
    states = {t["id"]: t["state"] for t in status(new["run_id"], wd)["tasks"]}
    assert states["t5"] == "SUCCEEDED" and states["t0"] == "CACHED"
    assert all(_count(ledger, t) == 1 for t in done_before if states[t] == "CACHED")


def test_resume_dry_run_says_what_it_would_do_and_does_nothing(tmp_path: Path) -> None:
    ledger, wd = tmp_path / "ledger", tmp_path / "wd"
    wf = _pipeline(tmp_path, ledger, typo=True)
    _, first = run_json(wf, wd)
    ran = ledger.read_text()
    in_place = updraft("resume", first["run_id"], "--dry-run", "--json", workdir=wd)
    assert in_place.returncode == 0, in_place.stderr
    verdicts = {s["id"]: s["verdict"] for s in json.loads(in_place.stdout)["steps"]}
    assert verdicts == {"prep": "kept", "side": "kept", "fix": "run", "use": "run"}
    _pipeline(tmp_path, ledger, typo=False)
    edited = updraft("resume", first["run_id"], "--dry-run", "--json", workdir=wd)
    assert edited.returncode == 0, edited.stderr
    assert "resume would run the edited file as a new run" in edited.stderr
    verdicts = {s["id"]: s["verdict"] for s in json.loads(edited.stdout)["steps"]}
    assert verdicts == {"prep": "cached", "side": "cached", "fix": "run", "use": "run"}
    assert ledger.read_text() == ran and len(_runs(wd)) == 1
    assert status(first["run_id"], wd)["state"] == "FAILED"
    attempts = {t["id"]: t["attempts"] for t in status(first["run_id"], wd)["tasks"]}
    assert attempts["fix"] == 1  # nothing was reset
