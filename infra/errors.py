"""The one error the deploy scripts raise for a problem the user can fix; the CLI prints its
message on one line and exits non-zero, without a traceback."""

from __future__ import annotations


class DeployError(Exception):
    """A deployment step cannot go on; the message says what is wrong and what to do."""

    exit_code = 1


class RefusedError(DeployError):
    """A destructive step refused to run without an explicit flag."""

    exit_code = 3
