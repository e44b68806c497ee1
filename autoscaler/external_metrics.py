"""The external metrics API for HPA: ``external.metrics.k8s.io/v1beta1`` over HTTPS.

Why: an HPA with an ``External`` metric and ``target: {type: AverageValue, averageValue: "1"}``
sets ``desired = ceil(value / 1)`` — so serving ``sloscaler_desired_replicas`` makes the HPA
follow the controller exactly (WVA's usage), while HPA keeps doing what it is good at (the scale
write, its own rate limits, being the one writer of ``spec.replicas``). The controller publishes
each ``hpa``-mode pool's decision on a :class:`DesiredReplicasBoard`; this server answers from it.

The API, as the kube-apiserver's aggregation layer calls it (registered by an ``APIService``):

* ``GET /apis/external.metrics.k8s.io/v1beta1`` → ``APIResourceList`` (discovery);
* ``GET /apis/external.metrics.k8s.io/v1beta1/namespaces/{ns}/{metric}?labelSelector=…`` →
  ``ExternalMetricValueList`` with one item per matching pool, ``value`` a Kubernetes quantity;
* an unknown metric → 404 with a ``Status`` body; a decision older than ``stale_after_s`` or none
  at all → an empty list, on which HPA holds its current size — never a made-up value.

Authentication and authorization are an aggregated API server's; a refused request gets a
``Status`` body before any data is read:

* **front proxy** — the kube-apiserver connects with a client certificate signed by the
  request-header CA (``--requestheader-client-ca-file``) whose CN is one of the allowed names,
  and names the user in ``X-Remote-User`` (groups in ``X-Remote-Group``, extras in
  ``X-Remote-Extra-*``). No user → 401; a certificate of that CA with another CN → 403; a
  certificate of another CA fails the TLS handshake.
* **delegation** (with a :class:`~autoscaler.k8s.reviews.Reviewer`) — a request without the
  front proxy's certificate may carry ``Authorization: Bearer <token>``, which a TokenReview
  turns into a user (not authenticated → 401); and *every* request, front-proxy or token, must
  then be allowed by a SubjectAccessReview for its attributes (the metric is the resource, the
  namespace the namespace, the verb ``list`` — or ``get`` with a name — and discovery a
  non-resource ``get`` of its path), or it gets 403. Members of ``system:masters`` are allowed
  without a review, as ``k8s.io/apiserver`` does. A review that cannot be made → 401
  (authentication) or 503 (authorization), never data.

Without a reviewer only the front proxy is accepted, and authorization of the remote user is left
to the kube-apiserver's RBAC on the APIService path.
"""

from __future__ import annotations

import json
import math
import ssl
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from autoscaler.background_server import BackgroundServer
from autoscaler.clock import Clock
from autoscaler.k8s.reviews import (
    Identity,
    RequestAttributes,
    Reviewer,
    ReviewUnavailableError,
)
from autoscaler.k8s.selectors import SelectorError, parse_selector
from autoscaler.k8s.timestamps import rfc3339
from autoscaler.logging import get_logger

GROUP = "external.metrics.k8s.io"
VERSION = "v1beta1"
PREFIX = f"/apis/{GROUP}/{VERSION}"
METRIC = "sloscaler_desired_replicas"
DEFAULT_ALLOWED_NAMES = ("front-proxy-client", "aggregator")
PRIVILEGED_GROUPS = ("system:masters",)  # allowed without a SubjectAccessReview
REASONS = {400: "BadRequest", 401: "Unauthorized", 403: "Forbidden", 503: "ServiceUnavailable"}


@dataclass(frozen=True, slots=True)
class Published:
    labels: Mapping[str, str]  # policy, pool, accelerator, role
    replicas: int
    t: float  # when the decision was made (clock seconds)


class DesiredReplicasBoard:
    """The latest desired replicas per (namespace, policy, pool), written by the controller and
    read by the API server threads."""

    def __init__(self, clock: Clock, stale_after_s: float = 120.0) -> None:
        self.clock = clock
        self.stale_after_s = stale_after_s
        self._lock = threading.Lock()
        self._values: dict[tuple[str, str, str], Published] = {}

    def publish(
        self, namespace: str, policy: str, pool: str, replicas: int, t: float, **labels: str
    ) -> None:
        with self._lock:
            self._values[(namespace, policy, pool)] = Published(
                {"policy": policy, "pool": pool, **labels}, replicas, t
            )

    def withdraw(self, namespace: str, policy: str, pool: str | None = None) -> None:
        """Stop serving a pool (or all of a policy's pools): HPA then holds."""
        with self._lock:
            for key in list(self._values):
                if key[:2] == (namespace, policy) and (pool is None or key[2] == pool):
                    del self._values[key]

    def get(self, namespace: str, policy: str, pool: str) -> Published | None:
        with self._lock:
            return self._values.get((namespace, policy, pool))

    def select(self, namespace: str, selector: str | None) -> list[Published]:
        """Fresh values in ``namespace`` whose labels match ``selector``."""
        sel = parse_selector(selector)
        now = self.clock.now()
        with self._lock:
            values = [(k, v) for k, v in self._values.items() if k[0] == namespace]
        return [
            v
            for _k, v in sorted(values, key=lambda kv: kv[0])
            if now - v.t <= self.stale_after_s and sel.matches(v.labels)
        ]


def quantity(value: float) -> str:
    """A Kubernetes quantity string: integers as such, fractions in milli-units (``1500m``)."""
    if math.isfinite(value) and float(value).is_integer():
        return str(int(value))
    return f"{round(value * 1000)}m"


def _status(code: int, reason: str, message: str) -> dict[str, Any]:
    return {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": message,
        "reason": reason,
        "code": code,
    }


class RefusedError(Exception):
    """A request answered with ``code`` and a ``Status`` body instead of data."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def request_attributes(path: str) -> RequestAttributes:
    """What a GET of ``path`` asks, as the API server's request-info resolver reads it:
    ``…/namespaces/{ns}/{metric}`` lists the metric (a resource of this group) in ``ns``;
    anything else (discovery, an unknown path) is a non-resource ``get`` of the path."""
    parts = [p for p in path.split("/") if p]
    prefix = [p for p in PREFIX.split("/") if p]
    rest = parts[len(prefix) :] if parts[: len(prefix)] == prefix else None
    if rest is not None and len(rest) in (3, 4) and rest[0] == "namespaces":
        return RequestAttributes(
            verb="get" if len(rest) == 4 else "list",
            path=path,
            group=GROUP,
            version=VERSION,
            resource=rest[2],
            namespace=rest[1],
            name=rest[3] if len(rest) == 4 else "",
        )
    return RequestAttributes(verb="get", path=path)


def _bearer_token(header: str | None) -> str | None:
    """The token of ``Authorization: Bearer <token>`` (None: no bearer header at all)."""
    parts = (header or "").strip().split(" ", 1)
    if len(parts) != 2 or parts[0].lower() != "bearer":
        return None
    return parts[1].strip()


def resource_list() -> dict[str, Any]:
    return {
        "kind": "APIResourceList",
        "apiVersion": "v1",
        "groupVersion": f"{GROUP}/{VERSION}",
        "resources": [
            {
                "name": METRIC,
                "singularName": "",
                "namespaced": True,
                "kind": "ExternalMetricValueList",
                "verbs": ["get"],
            }
        ],
    }


def value_list(values: list[Published], window_s: int) -> dict[str, Any]:
    return {
        "kind": "ExternalMetricValueList",
        "apiVersion": f"{GROUP}/{VERSION}",
        "metadata": {},
        "items": [
            {
                "metricName": METRIC,
                "metricLabels": dict(v.labels),
                "timestamp": rfc3339(v.t),
                "window": window_s,
                "value": quantity(v.replicas),
            }
            for v in values
        ],
    }


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:
        return

    def setup(self) -> None:
        # the TLS handshake runs here, in the connection's thread, not in the accept loop
        try:
            self.request.do_handshake()
        except (ssl.SSLError, OSError):
            self.request.close()
            raise
        super().setup()

    def _send(self, code: int, body: dict[str, Any]) -> None:
        data = json.dumps(body).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _front_proxy_user(self) -> Identity:
        groups = self.headers.get_all("X-Remote-Group") or []
        extra: dict[str, list[str]] = {}
        for key, value in self.headers.items():
            if key.lower().startswith("x-remote-extra-"):
                extra.setdefault(unquote(key[len("x-remote-extra-") :]).lower(), []).append(value)
        return Identity.of(str(self.headers["X-Remote-User"]), groups, extra=extra)

    def _authenticate(self) -> Identity:
        """The caller: the front proxy's user, else (with delegation) the bearer token's.
        Raises :class:`RefusedError` (401/403)."""
        cert = self.connection.getpeercert() if hasattr(self.connection, "getpeercert") else None
        names = {
            value
            for rdn in (cert or {}).get("subject", ())
            for key, value in rdn
            if key == "commonName"
        }
        allowed = self.server.allowed_names
        front_proxy = bool(cert) and (not allowed or bool(names & set(allowed)))
        if front_proxy:
            if not self.headers.get("X-Remote-User"):
                raise RefusedError(401, "Unauthorized: no X-Remote-User from the front proxy")
            return self._front_proxy_user()
        reviewer = self.server.reviewer
        token = _bearer_token(self.headers.get("Authorization")) if reviewer else None
        if reviewer is None or token is None:
            if cert:
                raise RefusedError(
                    403, f"Forbidden: client certificate CN {sorted(names)} is not allowed"
                )
            raise RefusedError(401, "Unauthorized: no client certificate")
        if not token:
            raise RefusedError(401, "Unauthorized: empty bearer token")
        try:
            who = reviewer.review_token(token)
        except ReviewUnavailableError as e:
            self.server.log.warning("token_review_failed", error=str(e))
            raise RefusedError(401, "Unauthorized: the token could not be reviewed") from None
        if who is None:
            raise RefusedError(401, "Unauthorized: the token is not valid")
        return who

    def _authorize(self, who: Identity, attributes: RequestAttributes) -> None:
        """Raises :class:`RefusedError` (403, or 503 when no review can be made) unless a
        SubjectAccessReview allows the request (always allowed without a reviewer)."""
        reviewer = self.server.reviewer
        if reviewer is None or set(who.groups) & set(self.server.privileged_groups):
            return
        try:
            decision = reviewer.review_access(who, attributes)
        except ReviewUnavailableError as e:
            self.server.log.warning("access_review_failed", user=who.user, error=str(e))
            raise RefusedError(
                503,
                "ServiceUnavailable: the request could not be authorized (no answer from the "
                "API server)",
            ) from None
        if not decision.allowed:
            why = f": {decision.reason}" if decision.reason else ""
            raise RefusedError(
                403, f'Forbidden: user "{who.user}" cannot {attributes.describe()}{why}'
            )

    def do_GET(self) -> None:
        url = urlsplit(self.path)
        try:
            self._authorize(self._authenticate(), request_attributes(url.path))
        except RefusedError as refused:
            code = refused.code
            self._send(code, _status(code, REASONS[code], refused.message))
            return
        parts = [p for p in url.path.split("/") if p]
        prefix = [p for p in PREFIX.split("/") if p]
        if parts == prefix:
            self._send(200, resource_list())
            return
        if (
            len(parts) == len(prefix) + 3
            and parts[: len(prefix)] == prefix
            and (parts[len(prefix)] == "namespaces")
        ):
            namespace, metric = parts[len(prefix) + 1], parts[len(prefix) + 2]
            if metric != METRIC:
                self._send(
                    404,
                    _status(404, "NotFound", f'the server could not find the metric "{metric}"'),
                )
                return
            query = {k: v[-1] for k, v in parse_qs(url.query).items()}
            try:
                values = self.server.board.select(namespace, query.get("labelSelector"))
            except SelectorError as e:
                self._send(400, _status(400, "BadRequest", f"labelSelector: {e}"))
                return
            self._send(200, value_list(values, self.server.window_s))
            return
        self._send(404, _status(404, "NotFound", f"the server could not find {url.path}"))


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    board: DesiredReplicasBoard
    allowed_names: tuple[str, ...]
    window_s: int
    reviewer: Reviewer | None
    privileged_groups: tuple[str, ...]
    log: Any

    def handle_error(self, request: Any, client_address: Any) -> None:
        return  # a refused TLS handshake or a dropped connection: nothing to serve


@dataclass(frozen=True, slots=True)
class TLSFiles:
    cert: Path  # serving certificate (PEM)
    key: Path
    client_ca: Path  # request-header (front-proxy) CA


def tls_context(files: TLSFiles) -> ssl.SSLContext:
    """Server TLS: our certificate; client certificates optional at the TLS layer (so a
    refusal is an HTTP 401 with a Status body) but verified against the front-proxy CA."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.load_cert_chain(str(files.cert), str(files.key))
    ctx.load_verify_locations(cafile=str(files.client_ca))
    ctx.verify_mode = ssl.CERT_OPTIONAL
    return ctx


class ExternalMetricsServer(BackgroundServer):
    """The HTTPS server; ``start`` serves from a background thread. With a ``reviewer``
    (usually a :class:`~autoscaler.k8s.reviews.CachingReviewer` over a
    :class:`~autoscaler.k8s.reviews.KubeReviewer`) it also accepts bearer tokens and authorizes
    every request by SubjectAccessReview."""

    def __init__(
        self,
        board: DesiredReplicasBoard,
        tls: TLSFiles,
        host: str = "0.0.0.0",
        port: int = 6443,
        allowed_names: tuple[str, ...] = DEFAULT_ALLOWED_NAMES,
        window_s: int = 60,
        reviewer: Reviewer | None = None,
        privileged_groups: tuple[str, ...] = PRIVILEGED_GROUPS,
    ) -> None:
        self._httpd = _Server((host, port), _Handler)
        self._httpd.board = board
        self._httpd.allowed_names = allowed_names
        self._httpd.window_s = window_s
        self._httpd.reviewer = reviewer
        self._httpd.privileged_groups = privileged_groups
        self._httpd.log = get_logger("sloscaler.external_metrics")
        ctx = tls_context(tls)
        self._httpd.socket = ctx.wrap_socket(
            self._httpd.socket, server_side=True, do_handshake_on_connect=False
        )
        super().__init__()
