"""The environment a cloud task starts from: the function's or worker's own, minus its AWS identity.

The task function and the Fargate worker hold a role that can read and write every run's
objects and the state table. Their credentials reach a process through the environment
(Lambda: the key variables; ECS/Fargate: the container-credentials URI; EKS/IRSA: a web
identity token file) or through a config file or the instance metadata service. A task is the
user's command, so it gets none of them: an SDK inside a task finds no credentials instead of
the role's. Tasks that need AWS pass their own in the workflow's `env` (or, better, a task
role with a session policy: docs/reliability.md, Security).

A task also cannot read the environment its function or worker was *started* with (from
`/proc/$PPID/environ`): `forbid_reading_this_process` makes that process non-dumpable once, at
start-up, so its `/proc` entries belong to root and a task running as the same non-root user
cannot open them.

Cloud only: the local runtime keeps the user's environment, their own credentials included, and
its processes stay dumpable. The calling process's `os.environ` is never changed - it still needs
its credentials.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import sys
from collections.abc import Mapping

# Every variable through which the AWS SDKs and CLI find credentials or where to get them
# (AWS SDKs and Tools reference guide, "Environment variables list"; the SDK for Java 1.x's
# older names; boto's AWS_SECURITY_TOKEN).
CREDENTIAL_VARIABLES: frozenset[str] = frozenset({
    # static or session keys (Lambda puts its role's here)
    "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN",
    "AWS_CREDENTIAL_EXPIRATION", "AWS_ACCESS_KEY", "AWS_SECRET_KEY",
    # the container credentials endpoint (ECS/Fargate task role, EKS Pod Identity)
    "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI", "AWS_CONTAINER_CREDENTIALS_FULL_URI",
    "AWS_CONTAINER_AUTHORIZATION_TOKEN", "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE",
    # web identity (EKS IRSA and friends)
    "AWS_WEB_IDENTITY_TOKEN_FILE", "AWS_ROLE_ARN", "AWS_ROLE_SESSION_NAME",
    # profiles and the files that hold them
    "AWS_PROFILE", "AWS_DEFAULT_PROFILE", "AWS_SHARED_CREDENTIALS_FILE", "AWS_CREDENTIAL_PROFILES_FILE",
    "AWS_CONFIG_FILE",
    # a redirected instance metadata service
    "AWS_EC2_METADATA_SERVICE_ENDPOINT", "AWS_EC2_METADATA_SERVICE_ENDPOINT_MODE",
})

# Set in every cloud task: with no credentials in its environment an SDK would next ask the
# instance metadata service (an EC2-backed worker's instance role); this stops it asking.
NO_INSTANCE_METADATA: Mapping[str, str] = {"AWS_EC2_METADATA_DISABLED": "true"}


def cloud_task_env(environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """A copy of `environ` (default: this process's) without AWS credentials, for a cloud task.

    Pass it to the runner as `base_env`; the task's own `env` is applied on top, so a workflow
    can still give a task credentials of its choosing.
    """
    source = os.environ if environ is None else environ
    env = {name: value for name, value in source.items() if name not in CREDENTIAL_VARIABLES}
    env.update(NO_INSTANCE_METADATA)
    return env


PR_SET_DUMPABLE = 4  # <linux/prctl.h>


def forbid_reading_this_process() -> bool:
    """Make this process non-dumpable (prctl(PR_SET_DUMPABLE, 0)); True if done, False where
    there is no prctl (not Linux). Raises OSError if prctl refuses.

    Called once by the task function (first invocation) and the worker (start-up), never by the
    local runtime. A non-dumpable process's /proc/<pid>/ files (environ, mem, ...) belong to root,
    and ptrace access to it needs CAP_SYS_PTRACE, so a task running as the same non-root user -
    the Lambda sandbox's user, the worker image's `updraft` - cannot read the credentials in the
    environment the process was started with. Side effects, on purpose: no core dumps of this
    process, and no same-user ptrace (gdb, py-spy, strace -p) or /proc/<pid>/environ|mem|io reads
    of it without root. Children get the default back when they exec, so tasks are unaffected.
    No help against root with CAP_SYS_PTRACE: the worker must not run as root.
    """
    if not sys.platform.startswith("linux"):
        return False
    try:
        prctl = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True).prctl
    except (OSError, AttributeError):
        return False
    if prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"prctl(PR_SET_DUMPABLE, 0): {os.strerror(err)}")
    return True
