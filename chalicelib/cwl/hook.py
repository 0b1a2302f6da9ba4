"""The runner's extension point for CWL tasks.

A CWL task's command is a template: `updraft-cwl-task SPEC` where SPEC (JSON) holds the
step's process, where its inputs come from and where its outputs go. `argv` turns it into
the program the runner spawns: this Python running `chalicelib.cwl.launch`, which builds the
real command line from the resolved inputs when the task starts (in the sandbox, wherever the
task is placed), runs it and packs the outputs.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence

LAUNCHER = "updraft-cwl-task"
_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
_BOOT = ("import sys; sys.path.insert(0, sys.argv[1]); from chalicelib.cwl.launch import main; "
         "sys.exit(main(sys.argv[2:]))")


def is_cwl(command: Sequence[str]) -> bool:
    return len(command) > 0 and command[0] == LAUNCHER


def argv(command: Sequence[str]) -> list[str]:
    """The argv that runs a CWL task's command template."""
    return [sys.executable, "-c", _BOOT, _ROOT, *command[1:]]
