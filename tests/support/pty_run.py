"""Run a command under a pseudo-terminal of a given size and collect what it draws."""

from __future__ import annotations

import fcntl
import os
import re
import select
import struct
import subprocess
import termios
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

# CSI sequences (colours, cursor moves, erase), OSC sequences, and the lone escapes rich uses
_ESCAPES = re.compile(r"\x1b\[[0-9;?]*[ -/]*[@-~]|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)|\x1b[()][0-9A-Za-z]|\x1b[=>78]")


@dataclass
class PtyResult:
    returncode: int
    raw: str  # everything written to the terminal, escapes included

    @property
    def text(self) -> str:
        """What was written, without escape sequences."""
        return _ESCAPES.sub("", self.raw)

    def screen(self, columns: int = 80, rows: int = 24) -> list[str]:
        """What the terminal shows at the end, the lines scrolled off the top included: the
        output fed through a VT100 emulator (pyte), as a user's terminal draws it."""
        import pyte

        screen = pyte.HistoryScreen(columns, rows, history=100_000)
        pyte.Stream(screen).feed(self.raw)
        scrolled = ["".join(row[x].data for x in range(columns)).rstrip() for row in screen.history.top]
        shown = [line.rstrip() for line in screen.display]
        while shown and not shown[-1]:
            shown.pop()
        return scrolled + shown

    def segments(self) -> list[str]:
        """Each stretch of text between line feeds and carriage returns: what one terminal line
        received at one time (a wider one would wrap on the terminal)."""
        return [seg for seg in re.split(r"[\r\n]", self.text) if seg]


def set_size(fd: int, columns: int, rows: int) -> None:
    fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", rows, columns, 0, 0))


def run_in_pty(argv: Sequence[str], *, columns: int = 80, rows: int = 24, env: dict[str, str] | None = None,
               cwd: str | None = None, timeout: float = 120,
               on_output: Callable[[str], None] | None = None) -> PtyResult:
    """Run `argv` with a terminal of `columns` x `rows` as its standard streams until it ends;
    `on_output` sees the text written so far (escapes removed) after each read."""
    master, slave = os.openpty()
    set_size(slave, columns, rows)
    env = {k: v for k, v in (env or os.environ).items() if k not in ("COLUMNS", "LINES")}
    env.setdefault("TERM", "xterm-256color")
    try:
        proc = subprocess.Popen(list(argv), stdin=slave, stdout=slave, stderr=slave, env=env, cwd=cwd,
                                start_new_session=True, close_fds=True)
    finally:
        os.close(slave)
    chunks: list[bytes] = []
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([master], [], [], 0.2)
            if ready:
                try:
                    data = os.read(master, 65536)
                except OSError:  # EIO: every writer closed the terminal
                    break
                if not data:
                    break
                chunks.append(data)
                if on_output is not None:
                    on_output(_ESCAPES.sub("", b"".join(chunks).decode("utf-8", "replace")))
            elif proc.poll() is not None:
                continue  # drain what is left; EIO ends the loop
        else:
            proc.kill()
            raise AssertionError(f"{argv} did not end in {timeout} s; it wrote:\n{b''.join(chunks).decode()}")
    finally:
        os.close(master)
    return PtyResult(proc.wait(timeout=30), b"".join(chunks).decode("utf-8", "replace"))
