"""The `updraft` subcommands that look at runs and talk to the SDK: report, ui, submit, watch,
and the CloudWatch side of logs. chalicelib/cli.py registers them with add_commands()."""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Callable
from typing import Any

from chalicelib.engine.states import RunState, TaskState
from chalicelib.errors import ConfigError, UpdraftError

AddFn = Callable[..., argparse.ArgumentParser]
DEFAULT_PORT = 8765


def _client(args: argparse.Namespace) -> Any:
    from updraft import Client

    return Client(getattr(args, "api", None), workdir=getattr(args, "workdir", None),
                  region=getattr(args, "region", None), auth=getattr(args, "auth", "iam"),
                  concurrency=getattr(args, "concurrency", None))


def _reading_client(args: argparse.Namespace) -> Any:
    """The client for a command that only reads runs: locally, NotFoundError naming the work
    dir when nothing has run there (rather than creating one)."""
    if getattr(args, "api", None) is None:
        from chalicelib.cli import _existing_workdir

        _existing_workdir(args)
    return _client(args)


def _api_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--api", default=None, metavar="URL", help="a deployed stack's API URL (default: the local runtime)")
    p.add_argument("--region", default=None, help="--api: the API's region (default: from its URL)")
    p.add_argument("--auth", default="iam", choices=("iam", "none"), help="--api: sign requests with SigV4 (default)")


def add_commands(sub: Any, add: AddFn) -> None:
    p = add("report", "write a run's HTML report and PNG charts (Gantt, DAG, concurrency, time and cost per type)")
    p.add_argument("run", nargs="?", help="run id (default: the latest run)")
    p.add_argument("--out", default=None, help="folder for report.html and the PNGs (default ./report-RUN)")
    p.add_argument("--rows", default="type", choices=("type", "worker"), help="Gantt rows: task type or worker")
    _api_options(p)
    p.set_defaults(func=cmd_report)

    p = add("ui", "the dashboard: serve it on 127.0.0.1 for the local runtime or a deployed stack")
    p.add_argument("--port", type=int, default=DEFAULT_PORT, help=f"port on 127.0.0.1 (default {DEFAULT_PORT}; 0: any)")
    p.add_argument("--open", action="store_true", help="open it in a web browser")
    _api_options(p)
    p.set_defaults(func=cmd_ui)

    p = add("submit", "start a run and return at once (locally it runs in the background)")
    p.add_argument("file")
    p.add_argument("--data", default=None, help="inputs: a folder locally, s3://bucket/prefix/ with --api")
    p.add_argument("--format", default=None)
    p.add_argument("--concurrency", type=int, default=None, help="local: parallel tasks (default: cores)")
    p.add_argument("--wait", action="store_true", help="then follow it like `updraft watch`")
    p.add_argument("--json", action="store_true")
    _api_options(p)
    p.set_defaults(func=cmd_submit)

    p = add("watch", "follow a run until it ends; exit 0 if it SUCCEEDED")
    p.add_argument("run", nargs="?", help="run id (default: the latest run)")
    p.add_argument("--timeout", type=float, default=None, help="give up after this many seconds (exit 1)")
    p.add_argument("--json", action="store_true", help="print the final run as JSON")
    _api_options(p)
    p.set_defaults(func=cmd_watch)


def add_log_options(p: argparse.ArgumentParser) -> None:
    """`updraft logs` options for a deployed stack (CloudWatch Logs)."""
    p.add_argument("--stage", default=None, help="read CloudWatch Logs of this deployed stage (e.g. dev)")
    p.add_argument("--api", default=None, metavar="URL",
                   help="read CloudWatch Logs of the stack at this URL (stage: from .chalice/deployed/)")
    p.add_argument("--app-name", default="updraft", help="the Chalice app name (default updraft)")
    p.add_argument("--log-group", action="append", default=None, help="read these log groups instead")
    p.add_argument("--since", type=float, default=None, metavar="HOURS", help="only lines this recent")
    p.add_argument("--region", default=None)


def stage_of_api(url: str, project: str = ".") -> str | None:
    """The Chalice stage deployed at `url`, from .chalice/deployed/<stage>.json (chalice deploy writes it)."""
    import glob

    want = url.rstrip("/")
    for path in sorted(glob.glob(os.path.join(project, ".chalice", "deployed", "*.json"))):
        try:
            with open(path, encoding="utf-8") as fh:
                resources = json.load(fh).get("resources", [])
        except (OSError, ValueError, AttributeError):
            continue
        if any(str(r.get("rest_api_url", "")).rstrip("/") == want for r in resources if isinstance(r, dict)):
            return os.path.splitext(os.path.basename(path))[0]
    return None


def wants_cloud_logs(args: argparse.Namespace) -> bool:
    return bool(getattr(args, "stage", None) or getattr(args, "api", None) or getattr(args, "log_group", None))


def cmd_cloud_logs(args: argparse.Namespace) -> int:
    from updraft.cloudwatch import CloudLogs
    from updraft.remote import region_from_url

    region = args.region or (region_from_url(args.api) if args.api else None)
    stage = args.stage or (stage_of_api(args.api) if args.api else None) or "dev"
    logs = CloudLogs(stage=stage, app_name=args.app_name, groups=args.log_group, region=region)
    start = int((time.time() - args.since * 3600) * 1000) if args.since else None
    shown = 0
    for event in logs.events(args.run, args.task, start):
        stamp = time.strftime("%H:%M:%S", time.localtime(event.timestamp_ms / 1000))
        print(f"{stamp}.{event.timestamp_ms % 1000:03d} {event.source:<11} {event.text()}")
        shown += 1
    if not shown:
        what = f"task {args.task} of run {args.run}" if args.task else f"run {args.run}"
        print(f"(no log lines for {what} in {', '.join(logs.groups())})", file=sys.stderr)
    return 0


# ---- report -------------------------------------------------------------------------------------

def _latest(client: Any) -> str:
    from chalicelib.errors import NotFoundError

    runs = client.runs(limit=1)
    if not runs:
        raise NotFoundError("no runs yet; start one with `updraft run FILE` or `updraft submit FILE`")
    return str(runs[0]["run_id"])


def run_data(client: Any, run_id: str) -> Any:
    """RunData for a run through the SDK (failed tasks get their log tails)."""
    from chalicelib.report.model import from_parts

    run = client.get(run_id)
    tasks = client.tasks(run_id)
    graph = client.graph(run_id)
    failed = [t for t in tasks if t.get("state") == TaskState.FAILED][:20]
    for t in failed:
        detail = client.task(run_id, t["id"])
        t["log_tail"], t["detail"] = detail.get("log_tail"), detail.get("detail")
    elapsed = (run.get("timings") or {}).get("elapsed_s")
    now = run["created_at"] + elapsed if isinstance(elapsed, int | float) else time.time()
    return from_parts(run, tasks, graph, now=now)


def cmd_report(args: argparse.Namespace) -> int:
    from chalicelib.report.build import write_report

    client = _reading_client(args)
    run_id = args.run if args.run not in (None, "latest") else _latest(client)
    data = run_data(client, run_id)
    out = args.out or os.path.join(os.getcwd(), f"report-{run_id}")
    files = write_report(data, out, rows=args.rows)
    print(f"report of run {run_id} ({data.state}, {len(data.tasks)} tasks):")
    print(f"  {files.html}")
    for path in (files.gantt, files.dag, files.concurrency):
        print(f"  {path}")
    return 0


# ---- ui -----------------------------------------------------------------------------------------

def cmd_ui(args: argparse.Namespace) -> int:
    from chalicelib.ui.server import make_server

    check_port(args.port)
    client = _client(args)
    server = make_server(client.transport, args.port, client.transport.label)
    url = f"http://127.0.0.1:{server.server_address[1]}/"
    print(f"updraft dashboard of {client.transport.label}: {url}  (Ctrl-C stops it)", flush=True)
    if args.open:
        import webbrowser

        webbrowser.open(url)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return 0


# ---- submit / watch -----------------------------------------------------------------------------

def cmd_submit(args: argparse.Namespace) -> int:
    client = _client(args)
    run = client.submit(args.file, data=args.data, format=args.format)
    if args.wait:
        return _follow(client, run["run_id"], None, args.json, args)
    if args.json:
        print(json.dumps(run))
    else:
        where = f" --api {args.api}" if args.api else ""
        print(f"run {run['run_id']}: {run['state']}, {run['task_count']} tasks")
        print(f"  follow it: updraft watch {run['run_id']}{where}")
    return 0


def cmd_watch(args: argparse.Namespace) -> int:
    client = _reading_client(args)
    return _follow(client, args.run or _latest(client), args.timeout, args.json, args)


def _follow(client: Any, run_id: str, timeout: float | None, as_json: bool,
            args: argparse.Namespace | None = None) -> int:
    from updraft import RunTimeoutError

    tracker = _watch_tracker(client, run_id, args)
    last: dict[str, Any] = {}

    def update(run: dict[str, Any]) -> None:
        last.update(run)
        tracker.update(run.get("counts", {}), str(run.get("state")), _elapsed(run))

    try:
        run = client.wait(run_id, timeout=timeout, on_update=update)
    except RunTimeoutError as exc:
        tracker.close(str(last.get("state")), last.get("counts", {}), _elapsed(last))
        raise UpdraftError(f"{exc}; it goes on: `updraft watch {run_id}` again to follow it") from None
    except BaseException:
        tracker.close(str(last.get("state")), last.get("counts", {}), _elapsed(last))
        raise
    tracker.close(str(run["state"]), run.get("counts", {}), _elapsed(run))
    if as_json:
        print(json.dumps({"run_id": run_id, "state": run["state"], "counts": run.get("counts", {}),
                          "elapsed_s": (run.get("timings") or {}).get("elapsed_s")}))
    else:
        counts = run.get("counts", {})
        parts = " ".join(f"{k.lower()}={v}" for k, v in sorted(counts.items()))
        print(f"run {run_id}: {run['state']}  {parts}")
    return 0 if run["state"] == RunState.SUCCEEDED else 1


def _elapsed(run: dict[str, Any]) -> float | None:
    elapsed = (run.get("timings") or {}).get("elapsed_s")
    return float(elapsed) if isinstance(elapsed, int | float) else None


def _watch_tracker(client: Any, run_id: str, args: argparse.Namespace | None) -> Any:
    """The progress display of a run followed through the API (chalicelib/ui/progress.py)."""
    from chalicelib.ui.display import open_display
    from chalicelib.ui.progress import Tracker, logs_command
    from chalicelib.ui.progress_sources import ApiSource

    api = getattr(args, "api", None)
    workdir = None if api else getattr(args, "workdir", None)
    run = client.get(run_id)
    total = int(run.get("task_count") or sum((run.get("counts") or {}).values()))
    display = open_display(sys.stderr)
    transport = getattr(client, "transport", None)
    display.start(run_id, total, str(getattr(transport, "label", None) or api or "local"))
    return Tracker(run_id, total, ApiSource(client, run_id), display, logs_command(run_id, workdir, api))


def check_port(port: int) -> None:
    if not 0 <= port <= 65535:
        raise ConfigError(f"--port must be between 0 and 65535, got {port}")
