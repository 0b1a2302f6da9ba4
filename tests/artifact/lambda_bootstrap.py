"""A Lambda-like runtime loop, run as `python3.12 -I -S lambda_bootstrap.py OPT TIMEOUT_S`.

Standard library only: it runs in the bare interpreter the deploy artifact is tested on.

- sys.path is what Lambda's python3.12 runtime gives a function: LAMBDA_TASK_ROOT (the
  function package), the layers under OPT (OPT/python/lib/python3.12/site-packages, OPT/python),
  then LAMBDA_RUNTIME_DIR (boto3 and botocore only);
- memory: RLIMIT_AS set to AWS_LAMBDA_FUNCTION_MEMORY_SIZE MB; time: SIGALRM after TIMEOUT_S
  per invocation (the sandbox is then dead, as on Lambda);
- no bytecode is written (the package is read-only on Lambda);
- the handler named by _HANDLER (module.attribute) is imported once (the cold start, timed);
- then one JSON event per stdin line -> one JSON line on the protocol channel:
  {"result": ...} or {"error": {"errorType", "errorMessage", "stackTrace"}}.

The protocol channel is the original stdout; the function's own stdout (Powertools' logs)
goes to stderr, as Lambda sends both to CloudWatch.
"""

from __future__ import annotations

import importlib
import json
import os
import resource
import signal
import sys
import time
import traceback
import uuid
from typing import Any


class Timeout(BaseException):  # not an Exception: a handler's `except Exception` must not swallow it
    pass


class Context:
    def __init__(self, timeout_s: float) -> None:
        name = os.environ["AWS_LAMBDA_FUNCTION_NAME"]
        self.function_name = name
        self.function_version = os.environ.get("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
        self.memory_limit_in_mb = int(os.environ["AWS_LAMBDA_FUNCTION_MEMORY_SIZE"])
        self.aws_request_id = str(uuid.uuid4())
        self.invoked_function_arn = f"arn:aws:lambda:{os.environ['AWS_REGION']}:123456789012:function:{name}"
        self.log_group_name = os.environ.get("AWS_LAMBDA_LOG_GROUP_NAME", f"/aws/lambda/{name}")
        self.log_stream_name = os.environ.get("AWS_LAMBDA_LOG_STREAM_NAME", "local")
        self.identity = None
        self.client_context = None
        self._deadline = time.monotonic() + timeout_s

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self._deadline - time.monotonic()) * 1000))


def _on_alarm(signum: int, frame: Any) -> None:
    raise Timeout()


def main() -> int:
    opt, timeout_s = sys.argv[1], float(sys.argv[2])
    proto = os.fdopen(os.dup(1), "w", buffering=1, encoding="utf-8")
    os.dup2(2, 1)  # the function's prints and logs -> stderr
    sys.stdout = os.fdopen(1, "w", buffering=1, encoding="utf-8", closefd=False)
    sys.dont_write_bytecode = True
    version = f"python{sys.version_info.major}.{sys.version_info.minor}"
    sys.path[:0] = [os.environ["LAMBDA_TASK_ROOT"], f"{opt}/python/lib/{version}/site-packages", f"{opt}/python",
                    os.environ["LAMBDA_RUNTIME_DIR"]]
    memory = int(os.environ["AWS_LAMBDA_FUNCTION_MEMORY_SIZE"]) * 1024 * 1024
    resource.setrlimit(resource.RLIMIT_AS, (memory, memory))
    signal.signal(signal.SIGALRM, _on_alarm)

    module_name, _, attr = os.environ["_HANDLER"].rpartition(".")
    started = time.perf_counter()
    try:
        handler = getattr(importlib.import_module(module_name), attr)
    except Exception as exc:  # Runtime.ImportModuleError on Lambda
        proto.write(json.dumps({"init_error": {"errorType": type(exc).__name__, "errorMessage": str(exc),
                                               "stackTrace": traceback.format_exc().splitlines()}}) + "\n")
        return 1
    proto.write(json.dumps({"ready": True, "init_ms": (time.perf_counter() - started) * 1000,
                            "sys_path": sys.path}) + "\n")

    for line in sys.stdin:
        if not line.strip():
            continue
        event = json.loads(line)
        os.environ["_X_AMZN_TRACE_ID"] = f"Root=1-{int(time.time()):08x}-{uuid.uuid4().hex[:24]};Sampled=0"
        context = Context(timeout_s)
        signal.setitimer(signal.ITIMER_REAL, timeout_s)
        try:
            reply: dict[str, Any] = {"result": handler(event, context)}
        except Timeout:
            proto.write(json.dumps({"error": {"errorType": "Sandbox.Timedout",
                                              "errorMessage": f"Task timed out after {timeout_s:.2f} seconds"}}) + "\n")
            return 2
        except MemoryError as exc:
            proto.write(json.dumps({"error": {"errorType": "Runtime.OutOfMemory", "errorMessage": str(exc)}}) + "\n")
            return 3
        except Exception as exc:
            reply = {"error": {"errorType": type(exc).__name__, "errorMessage": str(exc),
                               "stackTrace": traceback.format_exc().splitlines()}}
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0)
        proto.write(json.dumps(reply, default=str) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
