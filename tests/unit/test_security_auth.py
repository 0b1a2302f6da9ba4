"""The REST API requires IAM (SigV4) auth by default: every route that reads or changes runs
carries the IAM authorizer, so the API Gateway definition Chalice deploys (its swagger)
refuses unsigned requests on each of them; only the static dashboard page (GET /, no data)
is open. UPDRAFT_API_AUTH=none is the explicit opt-out for an API behind your own auth.

That a gateway with this definition refuses unsigned and badly signed requests, and lets the
SDK's signed ones through, is tested end to end in tests/e2e/test_sdk_remote.py
(test_unsigned_and_badly_signed_requests_are_refused).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
OPEN_ROUTES = {("/", "get")}  # the dashboard's static page: it holds no data

SWAGGER = """
import json
import app
from chalice.deploy.swagger import SwaggerGenerator
resources = {"api_handler_arn": "arn:aws:lambda:us-east-1:123456789012:function:api", "api_handler_name": "api"}
print(json.dumps(SwaggerGenerator("us-east-1", resources).generate_swagger(app.app)))
"""


def swagger(**env: str) -> dict[str, object]:
    """The API definition Chalice would deploy, for the app imported with `env` (a fresh
    process: the app reads UPDRAFT_API_AUTH when it is imported)."""
    full = {k: v for k, v in os.environ.items() if not k.startswith("UPDRAFT_")}
    full.update({"PYTHONPATH": str(REPO), "AWS_DEFAULT_REGION": "us-east-1", **env})
    proc = subprocess.run([sys.executable, "-c", SWAGGER], cwd=REPO, env=full, capture_output=True, text=True,
                          timeout=120, check=False)
    assert proc.returncode == 0, proc.stderr
    return dict(json.loads(proc.stdout))


def security(api: dict[str, object]) -> dict[tuple[str, str], object]:
    paths = api["paths"]
    assert isinstance(paths, dict)
    return {(path, method): op.get("security") for path, ops in paths.items() for method, op in ops.items()
            if isinstance(op, dict)}


def test_every_data_route_requires_sigv4_by_default() -> None:
    api = swagger()
    definitions = api["securityDefinitions"]
    assert isinstance(definitions, dict)
    assert definitions["sigv4"]["x-amazon-apigateway-authtype"] == "awsSigv4"
    routes = security(api)
    assert ("/runs", "post") in routes and len(routes) >= 8
    for route, needs in routes.items():
        if route in OPEN_ROUTES:
            assert needs is None, route
        else:
            assert needs == [{"sigv4": []}], f"{route} is reachable without a signed request"


def test_auth_none_is_an_explicit_opt_out() -> None:
    routes = security(swagger(UPDRAFT_API_AUTH="none"))
    assert all(needs is None for needs in routes.values())
