"""Authentication and authorization delegation of the external metrics API, over real HTTPS.

The server's reviewer is the production one (:class:`CachingReviewer` over :class:`KubeReviewer`,
the official client's AuthenticationV1Api/AuthorizationV1Api) talking real HTTP to the fake API
server, whose TokenReview and SubjectAccessReview endpoints answer from a token table and allow
rules. Callers are the official client (bearer token) and httpx (front-proxy certificate).
"""

from __future__ import annotations

import datetime as dt
import json
import ssl
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from kubernetes import client

from autoscaler.clock import VirtualClock
from autoscaler.external_metrics import (
    DesiredReplicasBoard,
    ExternalMetricsServer,
    TLSFiles,
    request_attributes,
)
from autoscaler.k8s.certs import Issued, issue, make_ca
from autoscaler.k8s.fake_apiserver import FakeApiServer
from autoscaler.k8s.fake_reviews import AccessRule, FakeAuthorities, FakeReviewer
from autoscaler.k8s.reviews import (
    AccessDecision,
    CachingReviewer,
    Identity,
    KubeReviewer,
    RequestAttributes,
    ReviewUnavailableError,
)

CERTS_FROM = dt.datetime(2020, 1, 1, tzinfo=dt.UTC)  # TLS checks validity on the real clock
DAYS = 30 * 365
GROUP, VERSION, METRIC = "external.metrics.k8s.io", "v1beta1", "sloscaler_desired_replicas"
BASE = f"/apis/{GROUP}/{VERSION}"
HPA_USER = "system:serviceaccount:kube-system:horizontal-pod-autoscaler"
READ_METRIC_IN_LLM = AccessRule(
    users=(HPA_USER,),
    verbs=("get", "list"),
    api_groups=(GROUP,),
    resources=(METRIC,),
    namespaces=("llm",),
)


@dataclass
class Pki:
    serving_ca: Issued
    front_proxy: Issued
    tls: TLSFiles


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    d = tmp_path_factory.mktemp("pki")
    serving_ca = make_ca(d, "serving-ca", CERTS_FROM, DAYS)
    names = ("127.0.0.1", "localhost")
    serving = issue(serving_ca, d, "sloscaler", CERTS_FROM, server_names=names, days=DAYS)
    header_ca = make_ca(d, "requestheader-ca", CERTS_FROM, DAYS)
    front_proxy = issue(header_ca, d, "front-proxy-client", CERTS_FROM, client=True, days=DAYS)
    return Pki(serving_ca, front_proxy, TLSFiles(serving.cert, serving.key, header_ca.cert))


@dataclass
class Served:
    url: str
    board: DesiredReplicasBoard
    reviewer: CachingReviewer
    fake: FakeApiServer
    clock: VirtualClock

    def reviews(self, kind: str) -> int:
        return sum(1 for r in self.fake.requests if r.path.endswith(f"/{kind}"))


def _serve(
    pki: Pki, board: DesiredReplicasBoard, reviewer: CachingReviewer
) -> ExternalMetricsServer:
    server = ExternalMetricsServer(board, pki.tls, host="127.0.0.1", port=0, reviewer=reviewer)
    return server.start()


@pytest.fixture
def served(
    pki: Pki, api: client.ApiClient, fake: FakeApiServer, clock: VirtualClock
) -> Iterator[Served]:
    reviewer = CachingReviewer(KubeReviewer(api, timeout_s=5), clock, ttl_s=10)
    board = DesiredReplicasBoard(clock, stale_after_s=120)
    server = _serve(pki, board, reviewer)
    board.publish("llm", "p", "a", 6, clock.now(), accelerator="H100", role="aggregated")
    board.publish("other", "p", "a", 3, clock.now(), accelerator="H100", role="aggregated")
    try:
        yield Served(f"https://127.0.0.1:{server.port}", board, reviewer, fake, clock)
    finally:
        server.stop()


def _official(pki: Pki, url: str, token: str) -> client.ApiClient:
    """The official client as a pod with a ServiceAccount token calls the API."""
    cfg = client.Configuration()
    cfg.host = url
    cfg.ssl_ca_cert = str(pki.serving_ca.cert)
    cfg.api_key = {"authorization": token}
    cfg.api_key_prefix = {"authorization": "Bearer"}
    return client.ApiClient(cfg)


def _metric(api: client.ApiClient, namespace: str = "llm") -> Any:
    return client.CustomObjectsApi(api).list_namespaced_custom_object(
        GROUP, VERSION, namespace, METRIC, label_selector="policy=p,pool=a"
    )


def _refusal(pki: Pki, url: str, token: str, namespace: str = "llm") -> tuple[int, Any]:
    with _official(pki, url, token) as api, pytest.raises(client.ApiException) as err:
        _metric(api, namespace)
    return int(err.value.status), json.loads(err.value.body or "")


def _front_proxy(pki: Pki, user: str, groups: tuple[str, ...] = ()) -> httpx.Client:
    ctx = ssl.create_default_context(cafile=str(pki.serving_ca.cert))
    ctx.load_cert_chain(str(pki.front_proxy.cert), str(pki.front_proxy.key))
    headers = [("X-Remote-User", user), *(("X-Remote-Group", g) for g in groups)]
    return httpx.Client(verify=ctx, headers=headers, timeout=5)


# --- bearer tokens through the official client ------------------------------------------------


def test_allowed_token_reads_the_metric(pki: Pki, served: Served) -> None:
    served.fake.auth.add_token("hpa-token", HPA_USER)
    served.fake.auth.allow(READ_METRIC_IN_LLM)
    with _official(pki, served.url, "hpa-token") as api:
        body = _metric(api)
    assert body["kind"] == "ExternalMetricValueList"
    assert [i["value"] for i in body["items"]] == ["6"]
    assert served.reviews("tokenreviews") == 1
    assert served.reviews("subjectaccessreviews") == 1


def test_unknown_token_is_401(pki: Pki, served: Served) -> None:
    served.fake.auth.allow(READ_METRIC_IN_LLM)
    code, body = _refusal(pki, served.url, "not-a-token")
    assert code == 401
    assert (body["kind"], body["reason"], body["code"]) == ("Status", "Unauthorized", 401)
    assert served.reviews("subjectaccessreviews") == 0  # never authorized, never answered


def test_denied_is_403_naming_user_verb_resource_and_namespace(pki: Pki, served: Served) -> None:
    served.fake.auth.add_token("hpa-token", HPA_USER)
    served.fake.auth.allow(READ_METRIC_IN_LLM)  # llm only
    code, body = _refusal(pki, served.url, "hpa-token", namespace="other")
    assert code == 403
    assert (body["kind"], body["reason"], body["code"]) == ("Status", "Forbidden", 403)
    assert body["message"] == (
        f'Forbidden: user "{HPA_USER}" cannot list resource "{METRIC}" in API group "{GROUP}" '
        'in the namespace "other"'
    )
    served.fake.auth.add_token("someone", "someone-else")
    assert _refusal(pki, served.url, "someone")[0] == 403  # authenticated, but no rule


def test_reviews_are_cached_then_expire(pki: Pki, served: Served) -> None:
    served.fake.auth.add_token("hpa-token", HPA_USER)
    served.fake.auth.allow(READ_METRIC_IN_LLM)
    with _official(pki, served.url, "hpa-token") as api:
        _metric(api)
        _metric(api)
        assert (served.reviews("tokenreviews"), served.reviews("subjectaccessreviews")) == (1, 1)
        served.clock.advance(9.9)
        _metric(api)
        assert (served.reviews("tokenreviews"), served.reviews("subjectaccessreviews")) == (1, 1)
        served.clock.advance(0.2)  # 10.1 s after the reviews: both asked again
        _metric(api)
        assert (served.reviews("tokenreviews"), served.reviews("subjectaccessreviews")) == (2, 2)
    assert served.reviewer.hits == 4


def test_a_denial_is_cached_too_until_its_ttl(pki: Pki, served: Served) -> None:
    served.fake.auth.add_token("hpa-token", HPA_USER)
    assert _refusal(pki, served.url, "hpa-token")[0] == 403
    served.fake.auth.allow(READ_METRIC_IN_LLM)  # RBAC changes: seen when the denial expires
    assert _refusal(pki, served.url, "hpa-token")[0] == 403
    served.clock.advance(10.0)
    with _official(pki, served.url, "hpa-token") as api:
        assert [i["value"] for i in _metric(api)["items"]] == ["6"]


def test_a_revoked_token_is_refused_once_its_review_expires(pki: Pki, served: Served) -> None:
    served.fake.auth.add_token("hpa-token", HPA_USER)
    served.fake.auth.allow(READ_METRIC_IN_LLM)
    with _official(pki, served.url, "hpa-token") as api:
        _metric(api)
    served.fake.auth.revoke("hpa-token")
    served.clock.advance(10.0)
    assert _refusal(pki, served.url, "hpa-token")[0] == 401


# --- the API server cannot answer: refused, never served, never cached ------------------------


def test_failed_token_review_is_401_and_not_cached(pki: Pki, served: Served) -> None:
    served.fake.auth.add_token("hpa-token", HPA_USER)
    served.fake.auth.allow(READ_METRIC_IN_LLM)
    served.fake.fail_next("POST", "/tokenreviews$", 503, "ServiceUnavailable")
    assert _refusal(pki, served.url, "hpa-token")[0] == 401
    with _official(pki, served.url, "hpa-token") as api:  # the next request reviews again
        assert [i["value"] for i in _metric(api)["items"]] == ["6"]
    assert served.reviews("tokenreviews") == 2


def test_failed_access_review_is_503_and_not_cached(pki: Pki, served: Served) -> None:
    served.fake.auth.add_token("hpa-token", HPA_USER)
    served.fake.auth.allow(READ_METRIC_IN_LLM)
    served.fake.fail_next("POST", "/subjectaccessreviews$", 500, "InternalError")
    code, body = _refusal(pki, served.url, "hpa-token")
    assert code == 503
    assert (body["kind"], body["reason"]) == ("Status", "ServiceUnavailable")
    with _official(pki, served.url, "hpa-token") as api:
        assert [i["value"] for i in _metric(api)["items"]] == ["6"]
    assert served.reviews("subjectaccessreviews") == 2


def test_unreachable_api_server_refuses_everything(pki: Pki, clock: VirtualClock) -> None:
    with FakeApiServer(clock) as gone:
        cfg = gone.configuration()
    cfg.retries = 0  # connection refused at once
    board = DesiredReplicasBoard(clock)
    board.publish("llm", "p", "a", 6, clock.now())
    with client.ApiClient(cfg) as api:
        server = _serve(pki, board, CachingReviewer(KubeReviewer(api, timeout_s=2), clock))
        url = f"https://127.0.0.1:{server.port}"
        try:
            assert _refusal(pki, url, "hpa-token")[0] == 401
            with _front_proxy(pki, HPA_USER) as c:
                r = c.get(url + BASE + f"/namespaces/llm/{METRIC}")
        finally:
            server.stop()
    assert r.status_code == 503
    assert r.json()["reason"] == "ServiceUnavailable"
    assert "items" not in r.json()


# --- the front proxy: its user and groups are authorized too ----------------------------------


def test_front_proxy_user_and_groups_need_a_grant(pki: Pki, served: Served) -> None:
    path = served.url + BASE + f"/namespaces/llm/{METRIC}"
    with _front_proxy(pki, "alice", ("metrics-readers", "devs")) as c:
        assert c.get(path).status_code == 403
        served.fake.auth.allow(
            AccessRule(groups=("metrics-readers",), verbs=("list",), resources=(METRIC,))
        )
        served.clock.advance(10.0)  # past the cached denial
        r = c.get(path, params={"labelSelector": "policy=p,pool=a"})
    assert r.status_code == 200
    assert [i["value"] for i in r.json()["items"]] == ["6"]
    assert served.reviews("tokenreviews") == 0  # the certificate authenticated


def test_system_masters_need_no_review(pki: Pki, served: Served) -> None:
    # the aggregator's availability checks come as system:kube-aggregator in system:masters
    with _front_proxy(pki, "system:kube-aggregator", ("system:masters",)) as c:
        assert c.get(served.url + BASE).status_code == 200
    assert served.reviews("subjectaccessreviews") == 0


def _discover(api: client.ApiClient) -> Any:
    """GET the group version's discovery document through the official client, token and all."""
    request = api.param_serialize(
        "GET", BASE, header_params={"Accept": "application/json"}, auth_settings=["BearerToken"]
    )
    response: Any = api.call_api(*request)
    response.read()
    return response


def test_discovery_is_authorized_as_a_non_resource_path(pki: Pki, served: Served) -> None:
    served.fake.auth.add_token("hpa-token", HPA_USER)
    served.fake.auth.allow(READ_METRIC_IN_LLM)  # a resource rule does not cover discovery
    with _official(pki, served.url, "hpa-token") as api:
        refused = _discover(api)
    assert refused.status == 403
    assert json.loads(refused.data)["message"] == (
        f'Forbidden: user "{HPA_USER}" cannot get path "{BASE}"'
    )
    served.fake.auth.allow(
        AccessRule(groups=("system:authenticated",), verbs=("get",), paths=("/apis/*",))
    )
    served.clock.advance(10.0)
    with _official(pki, served.url, "hpa-token") as api:
        response = _discover(api)
    assert response.status == 200
    assert json.loads(response.data)["kind"] == "APIResourceList"


def test_without_delegation_a_token_is_not_enough(pki: Pki, clock: VirtualClock) -> None:
    board = DesiredReplicasBoard(clock)
    server = ExternalMetricsServer(board, pki.tls, host="127.0.0.1", port=0).start()
    try:
        code, body = _refusal(pki, f"https://127.0.0.1:{server.port}", "hpa-token")
    finally:
        server.stop()
    assert code == 401
    assert body["message"] == "Unauthorized: no client certificate"


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        (BASE, RequestAttributes("get", BASE)),
        (
            f"{BASE}/namespaces/llm/{METRIC}",
            RequestAttributes(
                "list", f"{BASE}/namespaces/llm/{METRIC}", GROUP, VERSION, METRIC, "llm"
            ),
        ),
        (
            f"{BASE}/namespaces/llm/{METRIC}/x",
            RequestAttributes(
                "get", f"{BASE}/namespaces/llm/{METRIC}/x", GROUP, VERSION, METRIC, "llm", "x"
            ),
        ),
        ("/apis", RequestAttributes("get", "/apis")),
        (f"{BASE}/namespaces", RequestAttributes("get", f"{BASE}/namespaces")),
    ],
)
def test_request_attributes(path: str, expected: RequestAttributes) -> None:
    assert request_attributes(path) == expected


# --- the cache, on the in-memory fake reviewer ------------------------------------------------


def _fake_reviewer() -> tuple[FakeReviewer, Identity]:
    authorities = FakeAuthorities()
    who = authorities.add_token("t1", "alice", ("devs",))
    authorities.add_token("t2", "bob")
    authorities.add_token("t3", "carol")
    authorities.allow(AccessRule(groups=("devs",), verbs=("list",), resources=(METRIC,)))
    return FakeReviewer(authorities), who


def test_cache_is_bounded_least_recently_used_first_out() -> None:
    fake, _who = _fake_reviewer()
    cache = CachingReviewer(fake, VirtualClock(0), ttl_s=10, max_entries=2)
    for token in ("t1", "t2", "t1", "t3"):  # t3 evicts t2, the least recently used
        cache.review_token(token)
    assert fake.token_reviews == 3
    assert cache.review_token("t1") is not None
    assert fake.token_reviews == 3
    assert cache.review_token("t2") is not None
    assert fake.token_reviews == 4


def test_cache_keeps_no_failure_and_no_answer_past_its_ttl() -> None:
    fake, who = _fake_reviewer()
    clock = VirtualClock(0)
    cache = CachingReviewer(fake, clock, ttl_s=10)
    attributes = RequestAttributes("list", "/x", GROUP, VERSION, METRIC, "llm")
    fake.unavailable = True
    with pytest.raises(ReviewUnavailableError):
        cache.review_access(who, attributes)
    fake.unavailable = False
    assert cache.review_access(who, attributes) == AccessDecision(True, "allowed by fake rule 0")
    assert cache.review_access(who, attributes).allowed
    assert fake.access_reviews == 2
    clock.advance(10)
    cache.review_access(who, attributes)
    assert fake.access_reviews == 3
    other = RequestAttributes("list", "/x", GROUP, VERSION, "other_metric", "llm")
    assert not cache.review_access(who, other).allowed


def test_zero_ttl_disables_the_cache() -> None:
    fake, _who = _fake_reviewer()
    cache = CachingReviewer(fake, VirtualClock(0), ttl_s=0)
    cache.review_token("t1")
    cache.review_token("t1")
    assert fake.token_reviews == 2


# --- the fake API server's review endpoints validate like the real ones -----------------------


@pytest.fixture
def review_api(fake: FakeApiServer) -> Iterator[tuple[FakeApiServer, client.ApiClient]]:
    with client.ApiClient(fake.configuration()) as api_client:
        yield fake, api_client


def test_token_review_endpoint(review_api: tuple[FakeApiServer, client.ApiClient]) -> None:
    fake, api = review_api
    fake.auth.add_token("t", "alice", ("devs",), uid="42", extra={"scopes": ["a"]})
    authn = client.AuthenticationV1Api(api)

    def review(token: str, audiences: list[str] | None = None) -> client.V1TokenReviewStatus:
        spec = client.V1TokenReviewSpec(token=token, audiences=audiences)
        status = authn.create_token_review(client.V1TokenReview(spec=spec)).status
        assert status is not None
        return status

    status = review("t", ["x"])
    assert status.authenticated is True
    assert status.user is not None
    assert status.user.username == "alice"
    assert status.user.groups == ["devs", "system:authenticated"]
    assert (status.user.uid, status.user.extra) == ("42", {"scopes": ["a"]})
    assert status.audiences == ["x"]
    assert not review("nope").authenticated
    with pytest.raises(client.ApiException) as err:
        review("")
    assert err.value.status == 400
    assert json.loads(err.value.body or "")["message"] == (
        "token is required for TokenReview in authentication"
    )


@pytest.mark.parametrize(
    ("spec", "field"),
    [
        ({"user": "alice"}, "spec.resourceAttributes"),
        (
            {"user": "a", "resourceAttributes": {"verb": "get"}, "nonResourceAttributes": {}},
            "spec.nonResourceAttributes",
        ),
        ({"resourceAttributes": {"verb": "get"}}, "spec.user"),
        ({"user": "a", "resourceAttributes": {"verb": 3}}, "spec.resourceAttributes.verb"),
        ({"user": "a", "resourceAttributes": {"colour": "red"}}, "spec.resourceAttributes"),
    ],
)
def test_subject_access_review_endpoint_refuses_invalid_specs(
    review_api: tuple[FakeApiServer, client.ApiClient], spec: dict[str, Any], field: str
) -> None:
    fake, _api = review_api
    # raw HTTP: the official client would refuse to send a body of the wrong types itself
    r = httpx.post(
        fake.url + "/apis/authorization.k8s.io/v1/subjectaccessreviews",
        json={"apiVersion": "authorization.k8s.io/v1", "kind": "SubjectAccessReview", "spec": spec},
    )
    assert r.status_code == 422
    body = r.json()
    assert body["reason"] == "Invalid"
    assert [c["field"] for c in body["details"]["causes"]] == [field]


def test_subject_access_review_endpoint_answers_from_the_rules(
    review_api: tuple[FakeApiServer, client.ApiClient],
) -> None:
    fake, api = review_api
    fake.auth.allow(READ_METRIC_IN_LLM)
    authz = client.AuthorizationV1Api(api)

    def allowed(namespace: str, verb: str = "list", user: str = HPA_USER) -> bool:
        attrs = client.V1ResourceAttributes(
            group=GROUP, resource=METRIC, namespace=namespace, verb=verb
        )
        spec = client.V1SubjectAccessReviewSpec(user=user, resource_attributes=attrs)
        status = authz.create_subject_access_review(client.V1SubjectAccessReview(spec=spec)).status
        assert status is not None
        return status.allowed

    assert allowed("llm")
    assert allowed("llm", verb="get")
    assert not allowed("llm", verb="watch")
    assert not allowed("other")
    assert not allowed("llm", user="mallory")


def test_review_endpoints_are_create_only_and_discoverable(
    review_api: tuple[FakeApiServer, client.ApiClient],
) -> None:
    _fake, api = review_api
    resources = client.AuthenticationV1Api(api).get_api_resources().resources
    assert [(r.name, r.verbs) for r in resources] == [("tokenreviews", ["create"])]
    url = api.configuration.host + "/apis/authentication.k8s.io/v1/tokenreviews"
    response: Any = api.call_api("GET", url)
    response.read()
    assert response.status == 405
