"""Stand-in for one recorded task: sleep, then write each output at a given size.

    python -m chalicelib.runner.replay_task --sleep SECONDS [--write BYTES PATH]...

Used by replayed workflows (chalicelib.workflow.replay) so traces whose tools are not
installed still run through the normal runner, stores and state machine. Standard library
only and no package imports: it starts as fast as Python does. A file's content is its own
path repeated, so two outputs of the same size never share a content hash.
"""

from __future__ import annotations

import os
import sys
import time

USAGE = "usage: python -m chalicelib.runner.replay_task --sleep SECONDS [--write BYTES PATH]..."
CHUNK = 1 << 20


class UsageError(ValueError):
    pass


def parse(argv: list[str]) -> tuple[float, list[tuple[int, str]]]:
    """(seconds to sleep, [(bytes, path)]) from the command line."""
    sleep_s = 0.0
    writes: list[tuple[int, str]] = []
    i = 0
    while i < len(argv):
        flag = argv[i]
        try:
            if flag == "--sleep":
                sleep_s = float(argv[i + 1])
                i += 2
            elif flag == "--write":
                writes.append((int(argv[i + 1]), argv[i + 2]))
                i += 3
            else:
                raise UsageError(f"unknown argument {flag!r}")
        except (IndexError, ValueError) as exc:
            raise UsageError(f"bad arguments at {flag!r}: {exc}") from None
    if sleep_s < 0 or any(size < 0 for size, _ in writes):
        raise UsageError("sleep and sizes must not be negative")
    return sleep_s, writes


def write_file(path: str, size: int) -> None:
    folder = os.path.dirname(path)
    if folder:
        os.makedirs(folder, exist_ok=True)
    unit = (path + "\n").encode("utf-8", "surrogateescape")
    block = unit * (CHUNK // len(unit) + 1)
    with open(path, "wb") as fh:
        left = size
        while left > 0:
            piece = block[: min(left, CHUNK)]
            fh.write(piece)
            left -= len(piece)


def main(argv: list[str] | None = None) -> int:
    try:
        sleep_s, writes = parse(sys.argv[1:] if argv is None else argv)
    except UsageError as exc:
        print(f"replay_task: {exc}\n{USAGE}", file=sys.stderr)
        return 2
    time.sleep(sleep_s)
    for size, path in writes:
        write_file(path, size)
    return 0


if __name__ == "__main__":
    sys.exit(main())
