"""The `updraft plan` and `updraft simulate` subcommands; chalicelib/cli.py registers them
with add_commands()."""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable
from typing import Any

from chalicelib.errors import ConfigError

AddFn = Callable[..., argparse.ArgumentParser]
PLAN_NAMES = ("declared", "chosen", "all-function", "all-container")


def _objective_options(p: argparse.ArgumentParser) -> None:
    group = p.add_mutually_exclusive_group()
    group.add_argument("--objective", choices=("cost", "makespan"), default=None,
                       help="the cheapest plan (default) or the fastest")
    group.add_argument("--deadline", type=float, default=None, metavar="SECONDS",
                       help="the cheapest plan that finishes within SECONDS")
    group.add_argument("--budget", type=float, default=None, metavar="DOLLARS",
                       help="the fastest plan that costs at most DOLLARS")


def _model_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--format", default=None, help="input format (default: detected from content)")
    p.add_argument("--history", default=None, metavar="FILE",
                   help="measured runtimes (JSON lines; default: the work dir's planner-history.jsonl)")
    p.add_argument("--max-workers", type=int, default=None, help="elastic Fargate workers alive at once (default 100)")
    p.add_argument("--fixed-workers", default=None, metavar="N:VCPU:MB",
                   help="N always-on container workers of that size instead of elastic ones (e.g. 1:0.25:512)")
    p.add_argument("--function-concurrency", type=int, default=None, help="concurrent functions (default 1000)")
    p.add_argument("--arch", choices=("x86_64", "arm64"), default=None, help="price functions and containers as")
    p.add_argument("--function-sizes", default=None, metavar="MB,MB,...",
                   help="the task function sizes the stage deploys (default: UPDRAFT_FUNCTION_SIZES, else "
                   "512,1769,3008,10240)")
    p.add_argument("--batch-window", type=float, default=None, metavar="SECONDS",
                   help="the coordinator's event batching window (default: as app.py deploys it, "
                   "chalicelib/backends/aws/wiring.py)")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")


def add_commands(sub: Any, add: AddFn) -> None:
    p = add("plan", "choose function or container and a size for every task: cost, makespan, deadline or budget")
    p.add_argument("file")
    _objective_options(p)
    _model_options(p)
    p.add_argument("--out", default=None, metavar="FILE", help="write the chosen plan here (for simulate --plan)")
    p.set_defaults(func=cmd_plan)

    p = add("simulate", "simulate a run on a modelled cloud, driving the real coordinator: makespan and cost")
    p.add_argument("file")
    p.add_argument("--plan", default="chosen", metavar="PLAN",
                   help="a plan file from `plan --out`, or " + ", ".join(PLAN_NAMES)
                   + " (under --objective/--deadline/--budget; default: chosen)")
    _objective_options(p)
    _model_options(p)
    p.add_argument("--noise", type=float, default=0.0,
                   help="true runtimes vary around the prediction (log-normal sigma, e.g. 0.3)")
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=cmd_simulate)


def _platform(args: argparse.Namespace) -> Any:
    from chalicelib.planner.platform import FixedWorkers, Latencies, Platform

    kwargs: dict[str, Any] = {}
    sizes = getattr(args, "function_sizes", None) or os.environ.get("UPDRAFT_FUNCTION_SIZES")
    if sizes:
        from chalicelib.workflow.limits import DeployedSizes

        setting = "--function-sizes" if getattr(args, "function_sizes", None) else "UPDRAFT_FUNCTION_SIZES"
        kwargs["function_sizes"] = DeployedSizes.parse(sizes, setting)
    window = getattr(args, "batch_window", None)
    if window is not None:
        if not 0 <= window <= 300:  # NaN fails too; 300 s is Lambda's largest window
            raise ConfigError(f"--batch-window must be between 0 and 300 seconds, got {window!r}")
        kwargs["latencies"] = Latencies(events_batch_window_s=window)
    if args.max_workers is not None:
        if args.max_workers < 1:
            raise ConfigError("--max-workers must be at least 1")
        kwargs["max_workers"] = args.max_workers
    if args.function_concurrency is not None:
        if args.function_concurrency < 1:
            raise ConfigError("--function-concurrency must be at least 1")
        kwargs["function_concurrency"] = args.function_concurrency
    if args.arch is not None:
        kwargs["arch"] = args.arch
    if args.fixed_workers is not None:
        try:
            n, cpus, mb = args.fixed_workers.split(":")
            fixed = FixedWorkers(int(n), float(cpus), int(mb))
        except ValueError:
            raise ConfigError(
                f"--fixed-workers wants N:VCPU:MB (e.g. 1:0.25:512), got {args.fixed_workers!r}") from None
        if fixed.count < 1 or fixed.cpus <= 0 or fixed.memory_mb <= 0:
            raise ConfigError(f"--fixed-workers wants positive numbers, got {args.fixed_workers!r}")
        kwargs["fixed_workers"] = fixed
    return Platform(**kwargs)


def _history_path(args: argparse.Namespace) -> str | None:
    if args.history is not None:
        if not os.path.isfile(args.history):
            raise ConfigError(f"--history {args.history!r}: no such file")
        return str(args.history)
    from chalicelib.planner.history import HISTORY_FILE

    workdir = getattr(args, "workdir", None) or os.environ.get("UPDRAFT_HOME") or os.path.join(os.getcwd(), ".updraft")
    path = os.path.join(workdir, HISTORY_FILE)
    return path if os.path.isfile(path) else None


def _setup(args: argparse.Namespace) -> tuple[Any, Any, Any, Any]:
    from chalicelib.planner import perf_model
    from chalicelib.planner.planner import Objective, Planner
    from chalicelib.workflow.formats import load
    from chalicelib.workflow.validate import validate

    workflow = load(args.file, args.format)
    validate(workflow, args.file)
    planner = Planner(workflow, perf_model(history=_history_path(args)), _platform(args))
    return workflow, planner, Objective.of(args.objective, args.deadline, args.budget), planner.platform


def cmd_plan(args: argparse.Namespace) -> int:
    from chalicelib.planner.report import plan_set, render

    _, planner, objective, _ = _setup(args)
    plans = plan_set(planner, objective)
    if args.out:
        with open(args.out, "w", encoding="utf-8") as fh:
            fh.write(plans.chosen.dumps() + "\n")
    if args.json:
        out = {p.name: {k: v for k, v in p.to_dict().items() if k != "choices"} for p in plans.plans()}
        sys.stdout.write(json.dumps({"objective": objective.label(), "plans": out}, indent=1) + "\n")
    else:
        sys.stdout.write(render(planner, plans))
        if args.out:
            sys.stdout.write(f"\nchosen plan written to {args.out}\n")
    return 0 if plans.chosen.meets else 1


def cmd_simulate(args: argparse.Namespace) -> int:
    from chalicelib.planner.planner import CONTAINER, FUNCTION, KINDS
    from chalicelib.planner.plans import Plan
    from chalicelib.planner.simulator import simulate

    workflow, planner, objective, platform = _setup(args)
    plan: Plan | None
    if args.plan == "declared":
        plan = None
    elif args.plan in PLAN_NAMES:
        kinds = {"chosen": KINDS, "all-function": (FUNCTION,), "all-container": (CONTAINER,)}[args.plan]
        plan = planner.plan(objective, kinds, name=f"{args.plan} ({objective.label()})")
    elif os.path.isfile(args.plan):
        with open(args.plan, encoding="utf-8") as fh:
            try:
                plan = Plan.from_dict(json.load(fh), args.plan)
            except json.JSONDecodeError as exc:
                raise ConfigError(f"--plan {args.plan}: not JSON ({exc.msg} at line {exc.lineno})") from None
    else:
        raise ConfigError(f"--plan {args.plan!r} is neither a plan file nor one of {', '.join(PLAN_NAMES)}")
    result = simulate(workflow, plan, platform, planner.perf, noise=args.noise, seed=args.seed)
    if args.json:
        out = result.to_dict()
        if plan is not None:
            out["predicted"] = {"makespan_s": plan.makespan_s, "cost": plan.cost.total}
        sys.stdout.write(json.dumps(out, indent=1) + "\n")
    else:
        sys.stdout.write(result.summary() + "\n")
        if plan is not None:
            sys.stdout.write(f"  planner predicted {plan.makespan_s:,.1f} s and ${plan.cost.total:.4f}\n")
    return 0 if result.state == "SUCCEEDED" else 1

