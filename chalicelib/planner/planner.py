"""The hybrid planner: function or container, and which size, for every task.

Hard limits first. A task may go on a function of M MB only if the user allows it (placement
`auto` or `function`), its predicted peak memory x MEMORY_MARGIN fits in M, its declared disk
and staged bytes fit in /tmp (10 GB), its invocation payload fits the 1 MB async limit, and its
predicted run fits in FUNCTION_TIME_MARGIN of min(its timeout, 15 min). Containers need the
memory and a predicted run within the task's timeout.

Then a search over one policy per task type (the granularity of the `updraft plan` table; a
task the type's policy does not fit gets the nearest size that does: a bigger function, else a
container with at least the function's CPU). Every candidate plan is scored by the estimator
(estimate.py), which runs the DAG through the modelled pools, so the critical path, the
function concurrency and the container workers' start-up and reuse are all in the score.

- cost: the cheapest policies, improved one type at a time while the total falls.
- makespan: the fastest policies, then made cheaper one type at a time while the makespan
  stays within 1 %.
- deadline D (cheapest plan that meets D): from the cheapest plan, repeatedly take the upgrade
  with the most makespan saved per dollar added until the makespan meets D; then give back
  upgrades D does not need. (Sakellariou et al.'s GAIN heuristic, on the critical path the
  estimator measures; HyperFlow's SDBWS plays the same game with a budget/deadline factor.)
- budget B (fastest plan within B): from the fastest plan, repeatedly take the downgrade with
  the least makespan lost per dollar saved until the cost is within B (LOSS), then spend what
  is left on upgrades.
A deadline or budget that no plan meets gives the closest plan with `meets=False`.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Iterable, Sequence
from typing import cast

from msgspec import Struct

from chalicelib.errors import UpdraftError
from chalicelib.planner.costs import dollars
from chalicelib.planner.estimate import Estimate, Problem, estimate
from chalicelib.planner.perfmodel import PerfModel
from chalicelib.planner.plans import CONTAINER, FUNCTION, Choice, Plan, Policy, Split
from chalicelib.planner.platform import Platform
from chalicelib.planner.pricing import fargate_size
from chalicelib.workflow.limits import CONTAINER as CONTAINER_LIMITS
from chalicelib.workflow.model import Placement, Workflow

# Function sizes come from the platform: the ones the cloud stage deploys (Platform.function_sizes,
# UPDRAFT_FUNCTION_SIZES), so a plan never asks for a function that does not exist.
CONTAINER_CPUS = (0.25, 0.5, 1.0, 2.0, 4.0, 8.0, 16.0)
MAX_CONTAINER_MB = CONTAINER_LIMITS.max_memory_mb  # 120 GB: the largest Fargate size
MEMORY_MARGIN = 1.2
DISK_MARGIN = 1.2
FUNCTION_TIME_MARGIN = 0.8
CONTAINER_TIME_MARGIN = 0.9
MAKESPAN_SLACK = 0.01
MIN_SPLIT_TASKS = 4  # a type this big may be split between a function and a container
SPLIT_SHARES = (0.25, 0.5, 0.75)
MAX_ROUNDS = 40  # moves of a local search (each round evaluates a few moves per task type)
KINDS = (FUNCTION, CONTAINER)


class PlanError(UpdraftError):
    """The objective is malformed (e.g. both a deadline and a budget)."""

    exit_code = 2


class Objective(Struct, frozen=True):
    kind: str  # cost | makespan | deadline | budget
    value: float | None = None

    @classmethod
    def of(cls, objective: str | None = None, deadline: float | None = None, budget: float | None = None) -> Objective:
        given = [x for x in (objective, deadline, budget) if x is not None]
        if len(given) > 1:
            raise PlanError("give one of --objective, --deadline and --budget")
        if deadline is not None:
            if not deadline > 0:
                raise PlanError(f"--deadline must be a positive number of seconds, got {deadline}")
            return cls("deadline", float(deadline))
        if budget is not None:
            if not budget > 0:
                raise PlanError(f"--budget must be a positive number of dollars, got {budget}")
            return cls("budget", float(budget))
        kind = objective or "cost"
        if kind not in ("cost", "makespan"):
            raise PlanError(f"--objective must be 'cost' or 'makespan', got {kind!r}")
        return cls(kind)

    def label(self) -> str:
        if self.kind == "deadline":
            return f"deadline {self.value:,.0f} s"
        if self.kind == "budget":
            return f"budget {dollars(self.value or 0.0)}"
        return self.kind


class _Option(Struct, frozen=True):
    policy: Policy
    duration_s: float  # isolated: the type's summed predicted run time incl. start-up
    cost: float  # isolated: the type's summed compute cost


class Planner:
    def __init__(self, workflow: Workflow, perf: PerfModel | None = None, platform: Platform | None = None) -> None:
        self.workflow = workflow
        self.platform = platform or Platform()
        self.perf = perf or PerfModel()
        self.problem = Problem(workflow, self.perf, self.platform)
        p = self.problem
        self._need = [self._need_mb(i) for i in range(len(p.tasks))]
        self._disk = [self._disk_mb(i) for i in range(len(p.tasks))]
        self._payload_ok = [self._payload_bytes(i) <= self.platform.prices.functions.async_payload_bytes
                            for i in range(len(p.tasks))]
        self.type_names = sorted(set(p.types))
        self.members: dict[str, list[int]] = {name: [] for name in self.type_names}
        for i, name in enumerate(p.types):
            self.members[name].append(i)
        self._cache: dict[tuple[Policy, ...], Estimate] = {}  # policies in type order -> estimate
        self._by_type: dict[tuple[str, Policy], list[tuple[int, Choice]]] = {}
        self._resolved: dict[tuple[int, Policy], Choice] = {}
        # each task's place in its type by predicted work, most first (a Split's order)
        self._work_rank: dict[int, int] = {}
        for name in self.type_names:
            by_work = sorted(self.members[name], key=lambda i: (-p.demands[i].work_s, i))
            self._work_rank.update((i, r) for r, i in enumerate(by_work))
        self._searched: dict[tuple[Objective, tuple[str, ...]], tuple[dict[str, Policy], bool]] = {}

    # ---- hard limits ------------------------------------------------------------------------

    def _need_mb(self, i: int) -> int:
        peak = self.problem.demands[i].peak_mb
        if peak is None:
            return self.problem.tasks[i].resources.memory_mb
        return max(128, math.ceil(peak * MEMORY_MARGIN))

    def _disk_mb(self, i: int) -> int:
        """Disk to ask for: the task's own, raised to hold what it stages in and out."""
        demand = self.problem.demands[i]
        staged = math.ceil((demand.bytes_in + demand.bytes_out) * DISK_MARGIN / 1_048_576)
        return max(self.problem.tasks[i].resources.disk_mb, staged)

    def _payload_bytes(self, i: int) -> int:
        task = self.problem.tasks[i]
        body = {"command": task.command, "shell": task.shell, "inputs": task.inputs, "outputs": task.outputs,
                "env": dict(task.env)}
        return len(json.dumps(body)) + 1024

    def allowed(self, i: int) -> tuple[str, ...]:
        placement = self.problem.tasks[i].placement
        if placement is Placement.FUNCTION:
            return (FUNCTION,)
        if placement in (Placement.CONTAINER, Placement.LOCAL):
            return (CONTAINER,)
        return KINDS

    def run_s(self, i: int, choice: Choice) -> float:
        """Predicted run of task i on `choice`: staging + computation (no start-up)."""
        demand, task = self.problem.demands[i], self.problem.tasks[i]
        lat = self.platform.latencies
        staging_in = lat.transfer_s(demand.bytes_in, len(task.inputs))
        staging_out = lat.transfer_s(demand.bytes_out, len(task.outputs))
        return staging_in + staging_out + demand.compute_s(self._vcpus(choice))

    def _vcpus(self, choice: Choice) -> float:
        fixed = self.platform.fixed_workers
        if choice.placement == FUNCTION:
            return self.platform.prices.functions.vcpus(choice.memory_mb)
        return fixed.cpus if fixed is not None else choice.cpus

    def function_ok(self, i: int, memory_mb: int) -> bool:
        fn, task = self.platform.prices.functions, self.problem.tasks[i]
        return (
            FUNCTION in self.allowed(i)
            and self._need[i] <= memory_mb <= min(fn.max_memory_mb, self.platform.function_sizes[-1])
            and self._disk[i] <= fn.max_tmp_mb
            and self._payload_ok[i]
            and self.run_s(i, Choice(FUNCTION, memory_mb)) <= FUNCTION_TIME_MARGIN * min(
                task.resources.timeout_s, fn.max_timeout_s)
        )

    def container_ok(self, i: int, choice: Choice) -> bool:
        task = self.problem.tasks[i]
        fixed = self.platform.fixed_workers
        memory = fixed.memory_mb if fixed is not None else choice.memory_mb
        max_disk = self.platform.prices.containers.max_ephemeral_gb * 1024
        return (CONTAINER in self.allowed(i) and self._need[i] <= memory and self._disk[i] <= max_disk
                and self.run_s(i, choice) <= CONTAINER_TIME_MARGIN * task.resources.timeout_s)

    def _container(self, i: int, cpus: float, memory_mb: int = 0) -> Choice:
        # a need beyond the largest size (a trace's recorded peak of 200 GB) gets the largest:
        # container_ok then fails and the plan says the task is at risk, as for any misfit
        vcpu, mem = fargate_size(max(0.25, cpus), min(max(memory_mb, self._need[i]), MAX_CONTAINER_MB))
        return Choice(CONTAINER, mem, vcpu, self._disk_of(i))

    def _disk_of(self, i: int) -> int:
        return self._disk[i] if self._disk[i] > self.problem.tasks[i].resources.disk_mb else 0

    def resolve(self, i: int, policy: Policy) -> Choice:
        """What task i runs on under its type's `policy` (the nearest size that fits)."""
        key = (i, policy)
        got = self._resolved.get(key)
        if got is None:
            got = self._resolve(i, policy)
            self._resolved[key] = got
        return got

    def _resolve(self, i: int, policy: Policy) -> Choice:
        if isinstance(policy, Split):
            n = len(self.members[self.problem.types[i]])
            return self.resolve(i, policy.first if self._work_rank[i] < round(policy.share * n) else policy.rest)
        task = self.problem.tasks[i]
        if task.placement is Placement.LOCAL:
            return Choice(CONTAINER, task.resources.memory_mb, task.resources.cpus, self._disk_of(i))
        allowed = self.allowed(i)
        if policy.placement == FUNCTION and FUNCTION in allowed:
            for m in (policy.memory_mb, *(s for s in self.platform.function_sizes if s > policy.memory_mb)):
                if self.function_ok(i, m):
                    return Choice(FUNCTION, m, 0.0, self._disk_of(i))
            if CONTAINER not in allowed:
                return self._best_function(i, policy.memory_mb)
            return self._best_container(i, self.platform.prices.functions.vcpus(policy.memory_mb))
        if CONTAINER in allowed:
            return self._best_container(i, policy.cpus, policy.memory_mb)
        return self._best_function(i, policy.cpus * self.platform.prices.functions.mb_per_vcpu)

    def _best_container(self, i: int, cpus: float, memory_mb: int = 0) -> Choice:
        """The container of at least `cpus` that fits, else the fastest there is (at risk)."""
        first = self._container(i, cpus, memory_mb)
        for c in (first, *(self._container(i, v) for v in CONTAINER_CPUS if v > first.cpus)):
            if self.container_ok(i, c):
                return c
        return first if self.platform.fixed_workers is not None else self._container(i, self._threads(i))

    def _best_function(self, i: int, memory_mb: float) -> Choice:
        """A task fixed to functions: the smallest size >= memory_mb that fits, else the largest
        function there is (the plan's note says the task is at risk)."""
        for m in self.platform.function_sizes:
            if m >= memory_mb and self.function_ok(i, m):
                return Choice(FUNCTION, m, 0.0, self._disk_of(i))
        fn = self.platform.prices.functions
        disk = min(self._disk_of(i), fn.max_tmp_mb)
        top = self.platform.function_sizes[-1]
        return Choice(FUNCTION, top, 0.0, disk if disk > self.problem.tasks[i].resources.disk_mb else 0)

    def _threads(self, i: int) -> float:
        return min(CONTAINER_CPUS[-1], max(0.25, self.problem.demands[i].threads))

    # ---- options per type -------------------------------------------------------------------

    def options(self, name: str, kinds: Sequence[str] = KINDS) -> list[_Option]:
        """The type's policies on the time/cost Pareto front of each kind, cheapest first."""
        members = self.members[name]
        need = max(self._need[i] for i in members)
        raw: list[Choice] = []
        if FUNCTION in kinds:
            raw += [Choice(FUNCTION, m) for m in self.platform.function_sizes
                    if m >= min(self._need[i] for i in members)]
        if CONTAINER in kinds:
            raw += [Choice(CONTAINER, fargate_size(c, need)[1], c) for c in CONTAINER_CPUS if need <= MAX_CONTAINER_MB]
        out: list[_Option] = []
        fronts: dict[str, list[_Option]] = {}
        for kind in kinds:
            fronts[kind] = _pareto([self._isolated(name, p) for p in raw if p.placement == kind])
            out += fronts[kind]
        if len(members) >= MIN_SPLIT_TASKS and fronts.get(FUNCTION) and fronts.get(CONTAINER):
            fns = [cast(Choice, o.policy) for o in fronts[FUNCTION]]
            box = cast(Choice, fronts[CONTAINER][0].policy)
            picks = sorted({fns[0], fns[len(fns) // 2], fns[-1]})
            out += _pareto([self._isolated(name, Split(f, box, share)) for f in picks for share in SPLIT_SHARES])
        if not out:  # e.g. a type fixed to containers asked to run on functions only
            one_vcpu = self.platform.function_size_for(self.platform.prices.functions.mb_per_vcpu)
            fallback = (Choice(FUNCTION, one_vcpu), self._container(members[0], 1))
            out = _pareto([self._isolated(name, p) for p in fallback])
        out.sort(key=lambda o: (o.cost, o.duration_s))
        return out

    def _isolated(self, name: str, policy: Policy) -> _Option:
        lat, prices = self.platform.latencies, self.platform.prices
        duration = cost = 0.0
        startup = lat.function_cold_s if policy.placement != CONTAINER else lat.container_start_s
        for i in self.members[name]:
            c = self.resolve(i, policy)
            run = self.run_s(i, c)
            duration += run
            if c.placement == FUNCTION:
                cost += prices.functions.invocation_cost(c.memory_mb, run, self.platform.arch, c.disk_mb or 512)
            else:
                cost += run * prices.containers.rate_per_s(c.cpus, c.memory_mb, self.platform.arch)
        box = policy.rest if isinstance(policy, Split) else policy
        if box.placement == CONTAINER and self.platform.fixed_workers is None:
            # at least one worker boots (billed) and idles through its keep-alive
            c = self._container(self.members[name][0], box.cpus, box.memory_mb)
            cost += ((lat.container_start_s + self.platform.worker_keepalive_s)
                     * prices.containers.rate_per_s(c.cpus, c.memory_mb, self.platform.arch))
        return _Option(policy, duration + startup, cost)

    # ---- evaluation ---------------------------------------------------------------------------

    def assignment(self, policies: dict[str, Policy]) -> list[Choice]:
        out: list[Choice] = [Choice(FUNCTION, 0)] * len(self.problem.tasks)
        for name in self.type_names:
            for i, c in self._resolved_type(name, policies[name]):
                out[i] = c
        return out

    def _resolved_type(self, name: str, policy: Policy) -> list[tuple[int, Choice]]:
        key = (name, policy)
        got = self._by_type.get(key)
        if got is None:
            got = self._by_type[key] = [(i, self.resolve(i, policy)) for i in self.members[name]]
        return got

    def evaluate(self, policies: dict[str, Policy]) -> Estimate:
        key = tuple(policies[n] for n in self.type_names)
        got = self._cache.get(key)
        if got is None:
            got = self._cache[key] = estimate(self.problem, self.assignment(policies))
        return got

    def plan_of(self, name: str, policies: dict[str, Policy], meets: bool = True, note: str = "") -> Plan:
        choices = self.assignment(policies)
        est = self.evaluate(policies)
        if est.limit_hits:
            note = (note + "; " if note else "") + f"{est.limit_hits} task(s) predicted to hit a limit"
        return Plan(
            name=name, choices={t.id: c for t, c in zip(self.problem.tasks, choices, strict=True)},
            by_type=dict(policies), makespan_s=est.makespan_s, cost=est.cost, meets=meets, note=note,
        )

    # ---- search -------------------------------------------------------------------------------

    def plan(self, objective: Objective, kinds: Sequence[str] = KINDS, name: str | None = None) -> Plan:
        """The best plan found for `objective` using only `kinds` of placement.

        With both kinds, the function-only and container-only searches are starting points too,
        so the hybrid plan is never worse than the single-kind ones.
        """
        label = name or objective.label()
        found = [self._search(objective, kinds)]
        if len(kinds) > 1:
            found += [self._search(objective, (kind,)) for kind in kinds]
        policies, ok = min(found, key=lambda f: self._rank(objective, f[0]))
        note = ""
        if not ok:
            m, c = self._score(policies)
            note = (f"cannot meet the deadline; the fastest plan takes {m:,.0f} s" if objective.kind == "deadline"
                    else f"over budget; the cheapest plan costs {dollars(c)}")
        return self.plan_of(label, policies, ok, note)

    def _search(self, objective: Objective, kinds: Sequence[str]) -> tuple[dict[str, Policy], bool]:
        key = (objective, tuple(kinds))
        got = self._searched.get(key)
        if got is None:
            got = self._searched[key] = self._search_once(objective, kinds)
        return got

    def _search_once(self, objective: Objective, kinds: Sequence[str]) -> tuple[dict[str, Policy], bool]:
        opts = {n: self.options(n, kinds) for n in self.type_names}
        if objective.kind == "cost":
            return self._cheapest(opts), True
        if objective.kind == "makespan":
            return self._fastest(opts), True
        assert objective.value is not None
        if objective.kind == "deadline":
            return self._deadline(opts, objective.value)
        return self._budget(opts, objective.value)

    def _rank(self, objective: Objective, policies: dict[str, Policy]) -> tuple[float, ...]:
        """Sort key: smaller is better for `objective`."""
        m, c = self._score(policies)
        if objective.kind == "cost":
            return (c, m)
        if objective.kind == "makespan":
            return (m, c)
        assert objective.value is not None
        if objective.kind == "deadline":
            return (0.0, c, m) if m <= objective.value else (1.0, m, c)
        return (0.0, m, c) if c <= objective.value else (1.0, c, m)

    def fixed(self, name: str, policy: Callable[[str], Policy]) -> Plan:
        """A plan giving each type `policy(type)`, resolved per task by the hard limits."""
        return self.plan_of(name, {n: policy(n) for n in self.type_names})

    def from_choices(self, name: str, choose: Callable[[int], Choice], note: str = "") -> Plan:
        """A plan of `choose(i)` for every task i, as is (no hard-limit resolution), with its estimate."""
        choices = [choose(i) for i in range(len(self.problem.tasks))]
        est = estimate(self.problem, choices)
        if est.limit_hits:
            note = (note + "; " if note else "") + f"{est.limit_hits} task(s) predicted to hit a limit"
        return Plan(name=name, choices={t.id: c for t, c in zip(self.problem.tasks, choices, strict=True)},
                    makespan_s=est.makespan_s, cost=est.cost, note=note)

    def _score(self, policies: dict[str, Policy]) -> tuple[float, float]:
        est = self.evaluate(policies)
        return est.makespan_s, est.cost.total

    def _moves(
        self, opts: dict[str, list[_Option]], cur: dict[str, Policy], direction: str,
    ) -> Iterable[dict[str, Policy]]:
        """Plans with one type's policy changed, `direction` "cheaper" or "faster" in isolation:
        a size down or up, the cheapest or fastest of each kind, or the other kind's option
        of about the same speed."""
        for n in self.type_names:
            now = cur[n]
            here = next((o for o in opts[n] if o.policy == now), None)
            targets: dict[Policy, _Option] = {}
            for kind in (*KINDS, Split.placement):
                same = [o for o in opts[n] if o.policy.placement == kind]  # cheapest (slowest) first
                if not same:
                    continue
                picks = [same[0], same[-1]]
                if kind == now.placement:
                    k = next((k for k, o in enumerate(same) if o.policy == now), None)
                    if k is not None:
                        picks += [same[j] for j in (k - 1, k + 1) if 0 <= j < len(same)]
                elif here is not None:
                    picks.append(min(same, key=lambda o: abs(o.duration_s - here.duration_s)))
                targets.update((o.policy, o) for o in picks)
            moves = []
            for policy, o in targets.items():
                if policy == now:
                    continue
                if here is not None and direction == "cheaper" and o.cost >= here.cost:
                    continue
                if here is not None and direction == "faster" and o.duration_s >= here.duration_s:
                    continue
                gain = 0.0 if here is None else (
                    o.duration_s - here.duration_s if direction == "faster" else o.cost - here.cost)
                moves.append((gain, policy))
            for _, policy in sorted(moves, key=lambda m: m[0]):
                yield {**cur, n: policy}

    def _descend(
        self, opts: dict[str, list[_Option]], cur: dict[str, Policy], direction: str,
        better: Callable[[tuple[float, float], tuple[float, float]], bool],
    ) -> dict[str, Policy]:
        """First-improvement local search: take the first move `better` likes, and go on."""
        for _ in range(MAX_ROUNDS):
            score = self._score(cur)
            for cand in self._moves(opts, cur, direction):
                if better(self._score(cand), score):
                    cur = cand
                    break
            else:
                break
        return cur

    def _cheapest(self, opts: dict[str, list[_Option]]) -> dict[str, Policy]:
        start = {n: opts[n][0].policy for n in self.type_names}
        return self._descend(opts, start, "any", lambda new, old: new[1] < old[1] - 1e-12)

    def _fastest(self, opts: dict[str, list[_Option]]) -> dict[str, Policy]:
        start = {n: min(opts[n], key=lambda o: (o.duration_s, o.cost)).policy for n in self.type_names}
        limit = self._score(start)[0] * (1 + MAKESPAN_SLACK)
        return self._descend(opts, start, "cheaper", lambda new, old: new[0] <= limit and new[1] < old[1] - 1e-12)

    def _deadline(self, opts: dict[str, list[_Option]], deadline: float) -> tuple[dict[str, Policy], bool]:
        """The fastest plan made cheaper, and GAIN from the cheapest: the cheaper that meets D."""
        fastest = self._fastest(opts)
        if self._score(fastest)[0] > deadline:
            return fastest, False

        def cheaper_in_time(new: tuple[float, float], old: tuple[float, float]) -> bool:
            return new[0] <= deadline and new[1] < old[1] - 1e-12

        found = [self._descend(opts, fastest, "cheaper", cheaper_in_time)]
        cur = self._cheapest(opts)
        for _ in range(MAX_ROUNDS):
            m, c = self._score(cur)
            if m <= deadline:
                found.append(self._descend(opts, cur, "cheaper", cheaper_in_time))
                break
            best, best_key = None, None
            for cand in self._moves(opts, cur, "faster"):
                m2, c2 = self._score(cand)
                if m2 >= m - 1e-9:
                    continue
                # a move that meets the deadline, cheapest first; else the most time per dollar
                key = (1.0, -c2) if m2 <= deadline else (0.0, (m - m2) / max(c2 - c, 1e-9))
                if best_key is None or key > best_key:
                    best, best_key = cand, key
            if best is None:
                break
            cur = best
        return min(found, key=lambda p: self._score(p)[1]), True

    def _budget(self, opts: dict[str, list[_Option]], budget: float) -> tuple[dict[str, Policy], bool]:
        """The cheapest plan made faster, and LOSS from the fastest: the faster within B."""
        cheapest = self._cheapest(opts)
        if self._score(cheapest)[1] > budget:
            return cheapest, False

        def faster_in_budget(new: tuple[float, float], old: tuple[float, float]) -> bool:
            return new[1] <= budget and new[0] < old[0] * (1 - 1e-6)

        found = [self._descend(opts, cheapest, "faster", faster_in_budget)]
        cur = self._fastest(opts)
        for _ in range(MAX_ROUNDS):
            m, c = self._score(cur)
            if c <= budget:
                found.append(self._descend(opts, cur, "faster", faster_in_budget))
                break
            best, best_key = None, None
            for cand in self._moves(opts, cur, "cheaper"):
                m2, c2 = self._score(cand)
                if c2 >= c - 1e-12:
                    continue
                # a move within the budget, fastest first; else the least time lost per dollar
                key = (1.0, -m2) if c2 <= budget else (0.0, -max(m2 - m, 0.0) / (c - c2))
                if best_key is None or key > best_key:
                    best, best_key = cand, key
            if best is None:
                break
            cur = best
        return min(found, key=lambda p: self._score(p)[0]), True


def _pareto(options: list[_Option]) -> list[_Option]:
    """Options no other option beats on both duration and cost (ties: the first)."""
    out: list[_Option] = []
    for o in sorted(options, key=lambda o: (o.cost, o.duration_s)):
        if not out or o.duration_s < out[-1].duration_s - 1e-9:
            out.append(o)
    return out
