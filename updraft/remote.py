"""The transport to a deployed API: JSON over HTTPS, signed with SigV4 (botocore's signer).

The stack's API takes only IAM-signed requests by default (UPDRAFT_API_AUTH=iam); credentials
come from the usual chain (environment, profile, instance role) or an explicit session.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any

from chalicelib.errors import ConfigError, UpdraftError

SERVICE = "execute-api"
_REGION_RE = re.compile(r"\.execute-api\.([a-z0-9-]+)\.amazonaws\.com")
TIMEOUT_S = 30.0


def region_from_url(url: str) -> str | None:
    match = _REGION_RE.search(url)
    return match.group(1) if match else None


class RemoteTransport:
    """`request(method, path, params, body) -> (status, body)` against a deployed stack.

    auth="iam" signs every request (SigV4, service execute-api); auth="none" sends them as
    they are (an API behind your own auth). `http` is a requests.Session (tests mount adapters
    on it); `session` a boto3 or botocore session whose credentials sign.
    """

    def __init__(self, url: str, region: str | None = None, auth: str = "iam", session: Any = None,
                 http: Any = None, timeout_s: float = TIMEOUT_S) -> None:
        if not url.startswith(("https://", "http://")):
            raise ConfigError(f"--api must be the stack's URL (https://...), got {url!r}")
        if auth not in ("iam", "none"):
            raise ConfigError(f"auth must be 'iam' or 'none', got {auth!r}")
        self.base = url.rstrip("/")
        self.auth = auth
        self.timeout_s = timeout_s
        self._session = session
        self._region = region
        self._http = http

    @property
    def label(self) -> str:
        return self.base

    @property
    def http(self) -> Any:
        if self._http is None:
            import requests
            from requests.adapters import HTTPAdapter
            from urllib3.util.retry import Retry

            self._http = requests.Session()
            # reads are retried on throttling and gateway errors; writes never (not idempotent)
            retry = Retry(total=3, backoff_factor=0.5, status_forcelist=(429, 502, 503, 504),
                          allowed_methods=frozenset({"GET"}), raise_on_status=False)
            self._http.mount("https://", HTTPAdapter(max_retries=retry))
            self._http.mount("http://", HTTPAdapter(max_retries=retry))
        return self._http

    @property
    def region(self) -> str:
        region = self._region or region_from_url(self.base) or self._botocore().get_config_variable("region")
        if not region:
            raise ConfigError("cannot tell the API's region from its URL; pass --region (or set AWS_REGION)")
        return str(region)

    def _botocore(self) -> Any:
        if self._session is None:
            import botocore.session

            self._session = botocore.session.get_session()
        return getattr(self._session, "_session", self._session)  # a boto3 Session wraps a botocore one

    def credentials(self) -> Any:
        creds = self._botocore().get_credentials()
        if creds is None:
            raise ConfigError("no AWS credentials found to sign requests to the API: set AWS_PROFILE or "
                              "AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY (or use auth='none' for an unsigned API)")
        return creds

    def sign(self, prepared: Any) -> None:
        """Add SigV4 headers (Authorization, X-Amz-Date, X-Amz-Security-Token) to a PreparedRequest."""
        from botocore.auth import SigV4Auth
        from botocore.awsrequest import AWSRequest

        headers = {k: v for k, v in prepared.headers.items() if k.lower() in ("content-type", "accept")}
        aws = AWSRequest(method=prepared.method, url=prepared.url, data=prepared.body or b"", headers=headers)
        SigV4Auth(self.credentials(), SERVICE, self.region).add_auth(aws)
        for key, value in aws.headers.items():
            prepared.headers[key] = value

    def request(self, method: str, path: str, params: Mapping[str, str] | None = None,
                body: Any = None) -> tuple[int, dict[str, Any]]:
        import requests

        data = json.dumps(body).encode("utf-8") if body is not None else None
        headers = {"Accept": "application/json"}
        if data is not None:
            headers["Content-Type"] = "application/json"
        prepared = requests.Request(method.upper(), f"{self.base}/{path.lstrip('/')}", params=dict(params or {}),
                                    data=data, headers=headers).prepare()
        if self.auth == "iam":
            self.sign(prepared)
        try:
            resp = self.http.send(prepared, timeout=self.timeout_s)
        except requests.RequestException as exc:
            raise UpdraftError(f"cannot reach the API at {self.base}: {exc}") from None
        try:
            payload = resp.json()
        except ValueError:
            payload = {"error": f"HTTP {resp.status_code}", "message": resp.text[:500]}
        if not isinstance(payload, dict):
            payload = {"error": "unexpected reply", "message": str(payload)[:500]}
        return int(resp.status_code), payload
