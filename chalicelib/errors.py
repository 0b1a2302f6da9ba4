"""One exception hierarchy. Each error carries what a user needs to fix the problem.

The CLI maps `UpdraftError` subclasses to exit codes and one clear line; tracebacks are
reserved for bugs.
"""

from __future__ import annotations

from msgspec import Struct


class UpdraftError(Exception):
    """Base of every error Updraft raises on purpose."""

    exit_code = 1


class Problem(Struct, frozen=True):
    """One thing wrong with a workflow: where it is and what to do about it."""

    message: str
    task_id: str | None = None
    field: str | None = None

    def __str__(self) -> str:
        where = []
        if self.task_id is not None:
            where.append(f"task {self.task_id!r}")
        if self.field is not None:
            where.append(f"field {self.field!r}")
        prefix = (", ".join(where) + ": ") if where else ""
        return prefix + self.message

    def to_dict(self) -> dict[str, str | None]:
        return {"task_id": self.task_id, "field": self.field, "message": self.message}


class WorkflowError(UpdraftError):
    """The workflow cannot be accepted. Lists every problem found, not just the first."""

    exit_code = 2

    def __init__(self, problems: list[Problem], source: str | None = None) -> None:
        self.problems = list(problems)
        self.source = source
        head = f"{source}: " if source else ""
        lines = [f"{head}workflow is invalid ({len(self.problems)} problem(s)):"]
        lines += [f"  - {p}" for p in self.problems]
        super().__init__("\n".join(lines))


class FormatError(WorkflowError):
    """The file could not be read as any supported workflow format."""


class MissingInputsError(UpdraftError):
    """External inputs of the workflow are not where the run was told to find them."""

    exit_code = 2

    def __init__(self, missing: list[str], where: str) -> None:
        self.missing = missing
        listed = "\n".join(f"  - {m}" for m in missing)
        super().__init__(
            f"{len(missing)} external input(s) missing from {where}:\n{listed}\n"
            "Put them there, or pass --data DIR pointing at the folder that has them."
        )


class NotFoundError(UpdraftError):
    """A run, task or object named by the user does not exist."""

    exit_code = 2


class StateConflictError(UpdraftError):
    """A conditional state write lost: another attempt or instance got there first.

    Carries the current record, so the caller can tell a harmless duplicate from a bug.
    """

    def __init__(self, message: str, current: object | None = None) -> None:
        self.current = current
        super().__init__(message)


class RunBusyError(UpdraftError):
    """A live process is executing the run (it holds the run's lock): the operation waits for
    it to end or for `updraft cancel RUN`."""

    exit_code = 2


class TooLargeError(UpdraftError):
    """A request bigger than its route takes (HTTP 413). The message names the limit and the
    way in that takes it."""

    def __init__(self, message: str, limit: int) -> None:
        super().__init__(message)
        self.limit = limit


class ConfigError(UpdraftError):
    """Configuration is missing or wrong (names the setting and how to set it)."""

    exit_code = 2


class WorkdirError(UpdraftError):
    """The work dir, or the state database in it, cannot be used (names it and what to do)."""

    exit_code = 2


class PublishError(UpdraftError):
    """A run's outputs cannot be copied where it was told to publish them (a file there with
    other content, a folder in the way): names each place and the fix; nothing was copied."""

    exit_code = 2
