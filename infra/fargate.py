"""Fargate task sizes: the CPU and memory pairs Fargate accepts (Linux, platform 1.4.0).

AWS documentation, "Task CPU and memory" (read 2026-12-07). infra/stack.yaml constrains its
WorkerCpu and WorkerMemory parameters with the same table (AllowedValues and one Rule per CPU
size; tests/deploy/test_fargate_sizes.py keeps the two equal), and scripts/bootstrap checks a
pair before sending it, so a bad pair is one line here instead of a failed stack update.
"""

from __future__ import annotations

from collections.abc import Mapping
from itertools import pairwise

from infra.errors import DeployError


def _steps(low: int, high: int, step: int) -> tuple[int, ...]:
    return tuple(range(low, high + 1, step))


DEFAULT_CPU, DEFAULT_MEMORY = "1024", "4096"  # the template's defaults of WorkerCpu and WorkerMemory

# CPU units (1024 = 1 vCPU) -> the memory sizes (MiB) Fargate accepts with it
MEMORY_FOR_CPU: dict[int, tuple[int, ...]] = {
    256: (512, 1024, 2048),
    512: _steps(1024, 4096, 1024),
    1024: _steps(2048, 8192, 1024),
    2048: _steps(4096, 16384, 1024),
    4096: _steps(8192, 30720, 1024),
    8192: _steps(16384, 61440, 4096),
    16384: _steps(32768, 122880, 8192),
}


def all_memory_sizes() -> list[int]:
    return sorted({m for sizes in MEMORY_FOR_CPU.values() for m in sizes})


def check_params(wanted: Mapping[str, str], previous: Mapping[str, str]) -> None:
    """Check the pair a stack update would have: given values, else previous ones, else defaults."""
    check_size(wanted.get("WorkerCpu") or previous.get("WorkerCpu") or DEFAULT_CPU,
               wanted.get("WorkerMemory") or previous.get("WorkerMemory") or DEFAULT_MEMORY)


def check_size(cpu: str, memory: str) -> None:
    """Raise DeployError, in one line, unless Fargate accepts `cpu` units with `memory` MiB."""
    try:
        units, mib = int(cpu), int(memory)
    except ValueError:
        raise DeployError(f"WorkerCpu={cpu!r} and WorkerMemory={memory!r} must be whole numbers") from None
    if units not in MEMORY_FOR_CPU:
        raise DeployError(f"WorkerCpu={cpu} is not a Fargate size; use one of "
                          f"{', '.join(map(str, MEMORY_FOR_CPU))}")
    if mib not in MEMORY_FOR_CPU[units]:
        raise DeployError(f"Fargate does not run WorkerCpu={cpu} with WorkerMemory={memory}: with {cpu} CPU "
                          f"units WorkerMemory must be {describe(units)} (--param WorkerMemory=...)")


def describe(cpu: int) -> str:
    """The memory sizes allowed with `cpu`, in words (the template's rule says the same)."""
    sizes = MEMORY_FOR_CPU[cpu]
    steps = {b - a for a, b in pairwise(sizes)}
    if len(steps) == 1:
        return f"{sizes[0]} to {sizes[-1]} MiB in steps of {steps.pop()}"
    return ", ".join(map(str, sizes[:-1])) + f" or {sizes[-1]} MiB"
