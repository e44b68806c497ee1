"""The external metrics API over real HTTPS: discovery, values for HPA, staleness, front-proxy
authentication."""

from __future__ import annotations

import datetime as dt
import ssl
from collections.abc import Iterator
from dataclasses import dataclass

import httpx
import pytest

from autoscaler.clock import VirtualClock
from autoscaler.external_metrics import (
    DesiredReplicasBoard,
    ExternalMetricsServer,
    TLSFiles,
    quantity,
)
from autoscaler.k8s.certs import Issued, issue, make_ca

START = dt.datetime(2027, 1, 15, tzinfo=dt.UTC)  # the virtual clock's start
CERTS_FROM = dt.datetime(2020, 1, 1, tzinfo=dt.UTC)  # TLS checks validity on the real clock
DAYS = 30 * 365
BASE = "/apis/external.metrics.k8s.io/v1beta1"


@dataclass
class Pki:
    serving_ca: Issued
    front_proxy: Issued  # CN front-proxy-client, signed by the request-header CA
    other_cn: Issued  # signed by the request-header CA, CN not allowed
    stranger: Issued  # signed by an unrelated CA
    tls: TLSFiles


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    d = tmp_path_factory.mktemp("pki")
    t0 = CERTS_FROM
    serving_ca = make_ca(d, "serving-ca", t0, DAYS)
    names = ("127.0.0.1", "localhost")
    serving = issue(serving_ca, d, "sloscaler", t0, server_names=names, days=DAYS)
    header_ca = make_ca(d, "requestheader-ca", t0, DAYS)
    other_ca = make_ca(d, "other-ca", t0, DAYS)
    return Pki(
        serving_ca,
        issue(header_ca, d, "front-proxy-client", t0, client=True, days=DAYS),
        issue(header_ca, d, "someone", t0, client=True, days=DAYS),
        issue(other_ca, d, "front-proxy-client-2", t0, client=True, days=DAYS),
        TLSFiles(serving.cert, serving.key, header_ca.cert),
    )


@pytest.fixture
def clock() -> VirtualClock:
    return VirtualClock(START.timestamp())


@pytest.fixture
def served(pki: Pki, clock: VirtualClock) -> Iterator[tuple[DesiredReplicasBoard, str]]:
    board = DesiredReplicasBoard(clock, stale_after_s=120)
    server = ExternalMetricsServer(board, pki.tls, host="127.0.0.1", port=0).start()
    try:
        yield board, f"https://127.0.0.1:{server.port}"
    finally:
        server.stop()


def _client(
    pki: Pki, cert: Issued | None, user: str | None = "system:kube-aggregator"
) -> httpx.Client:
    ctx = ssl.create_default_context(cafile=str(pki.serving_ca.cert))
    if cert is not None:
        ctx.load_cert_chain(str(cert.cert), str(cert.key))
    headers = {"X-Remote-User": user} if user else {}
    return httpx.Client(verify=ctx, headers=headers, timeout=5)


def test_discovery(pki: Pki, served: tuple[DesiredReplicasBoard, str]) -> None:
    _board, url = served
    with _client(pki, pki.front_proxy) as c:
        r = c.get(url + BASE)
    assert r.status_code == 200
    body = r.json()
    assert body["kind"] == "APIResourceList"
    assert body["groupVersion"] == "external.metrics.k8s.io/v1beta1"
    assert [x["name"] for x in body["resources"]] == ["sloscaler_desired_replicas"]


def test_desired_replicas_by_policy_and_pool(
    pki: Pki, served: tuple[DesiredReplicasBoard, str], clock: VirtualClock
) -> None:
    board, url = served
    board.publish("llm", "p", "a", 6, clock.now(), accelerator="H100", role="aggregated")
    board.publish("llm", "p", "b", 2, clock.now(), accelerator="L40S", role="aggregated")
    board.publish("other", "p", "a", 9, clock.now())
    with _client(pki, pki.front_proxy) as c:
        r = c.get(
            url + BASE + "/namespaces/llm/sloscaler_desired_replicas",
            params={"labelSelector": "policy=p,pool=a"},
        )
        assert r.status_code == 200
        body = r.json()
        assert body["kind"] == "ExternalMetricValueList"
        (item,) = body["items"]
        assert item["metricName"] == "sloscaler_desired_replicas"
        assert item["value"] == "6"
        assert item["metricLabels"] == {
            "policy": "p",
            "pool": "a",
            "accelerator": "H100",
            "role": "aggregated",
        }
        assert item["timestamp"] == "2027-01-15T00:00:00Z"
        everything = c.get(url + BASE + "/namespaces/llm/sloscaler_desired_replicas").json()
        assert [i["value"] for i in everything["items"]] == ["6", "2"]


def test_stale_or_missing_decisions_give_an_empty_list(
    pki: Pki, served: tuple[DesiredReplicasBoard, str], clock: VirtualClock
) -> None:
    board, url = served
    board.publish("llm", "p", "a", 6, clock.now())
    path = url + BASE + "/namespaces/llm/sloscaler_desired_replicas"
    with _client(pki, pki.front_proxy) as c:
        missing = c.get(path, params={"labelSelector": "policy=p,pool=zzz"}).json()
        assert missing["items"] == []
        clock.advance(121)  # the controller stopped deciding: HPA must hold, not follow a ghost
        stale = c.get(path, params={"labelSelector": "policy=p,pool=a"}).json()
        assert stale["items"] == []


def test_unknown_metric_is_404_with_a_status(
    pki: Pki, served: tuple[DesiredReplicasBoard, str]
) -> None:
    _board, url = served
    with _client(pki, pki.front_proxy) as c:
        r = c.get(url + BASE + "/namespaces/llm/vllm_kv_cache_usage")
    assert r.status_code == 404
    body = r.json()
    assert body["kind"] == "Status"
    assert body["reason"] == "NotFound"
    assert body["code"] == 404


def test_unauthenticated_requests_are_refused(
    pki: Pki, served: tuple[DesiredReplicasBoard, str]
) -> None:
    _board, url = served
    path = url + BASE + "/namespaces/llm/sloscaler_desired_replicas"
    with _client(pki, None) as c:  # no client certificate
        r = c.get(path)
    assert r.status_code == 401
    assert r.json()["kind"] == "Status"
    with _client(pki, pki.front_proxy, user=None) as c:  # the proxy named no user
        assert c.get(path).status_code == 401
    with _client(pki, pki.other_cn) as c:  # a valid certificate, but not the front proxy's CN
        r = c.get(path)
    assert r.status_code == 403
    with _client(pki, pki.stranger) as c, pytest.raises(httpx.TransportError):
        c.get(path)  # signed by a CA we do not trust: the TLS handshake fails


@pytest.mark.parametrize(("value", "text"), [(6, "6"), (0, "0"), (1.5, "1500m"), (0.25, "250m")])
def test_quantity(value: float, text: str) -> None:
    assert quantity(value) == text
