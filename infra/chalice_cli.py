"""Run the Chalice CLI with the Lambda runtime pinned.

Chalice picks the functions' runtime from the Python that runs it (3.11 here gives
python3.11), with no setting to change it. Lambda blocked creating python3.11 functions on
2026-07-31 and updating them on 2026-08-31 (AWS Lambda runtimes page, read 2026-11-01), so a
deploy from the project's Python 3.11 would fail. This wrapper runs the same CLI with the
runtime set to LAMBDA_RUNTIME (override: UPDRAFT_LAMBDA_RUNTIME):

    python -m infra.chalice_cli deploy --stage dev
    python -m infra.chalice_cli package --stage dev out/

python3.12 is the supported runtime closest to the 3.11 the project is tested on (no module
the code uses was removed in 3.12); it is supported until 2028-10-31.
"""

from __future__ import annotations

import os
import sys

LAMBDA_RUNTIME = "python3.12"
RUNTIME_ENV = "UPDRAFT_LAMBDA_RUNTIME"
SUPPORTED = ("python3.12", "python3.13", "python3.14")


def runtime() -> str:
    chosen = os.environ.get(RUNTIME_ENV) or LAMBDA_RUNTIME
    if chosen not in SUPPORTED:
        raise SystemExit(f"chalice_cli: {RUNTIME_ENV}={chosen!r} is not one of {', '.join(SUPPORTED)}")
    return chosen


def pin_runtime(name: str) -> None:
    from chalice.config import Config

    if not isinstance(getattr(Config, "lambda_python_version", None), property):
        raise SystemExit("chalice_cli: this Chalice has no Config.lambda_python_version; update infra/chalice_cli.py")
    Config.lambda_python_version = property(lambda self: name)  # type: ignore[method-assign,assignment]


def main(argv: list[str] | None = None) -> int:
    pin_runtime(runtime())
    from chalice.cli import main as chalice_main

    sys.argv = ["chalice", *(sys.argv[1:] if argv is None else argv)]
    return int(chalice_main() or 0)


if __name__ == "__main__":
    raise SystemExit(main())
