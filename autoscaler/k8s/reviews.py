"""Delegated authentication and authorization: ask the API server who a caller is and what it
may do (``TokenReview`` and ``SubjectAccessReview``), as an aggregated API server does.

Why: the external metrics API owns no users and no RBAC. The kube-apiserver's aggregation layer
vouches for its callers with the front-proxy client certificate (``X-Remote-User``/``-Group``),
but any other caller — a pod with its ServiceAccount token, ``kubectl`` through a port-forward —
presents a bearer token only the API server can check. So, like ``k8s.io/apiserver``'s
delegating authenticator and authorizer (metrics-server, prometheus-adapter):

* a bearer token becomes a user with an ``authentication.k8s.io/v1`` TokenReview;
* every request — from the front proxy or with a token — is allowed only if an
  ``authorization.k8s.io/v1`` SubjectAccessReview for its attributes (verb, API group, version,
  resource = the metric, namespace; or the path of a non-resource request such as discovery)
  says so, i.e. the cluster's RBAC decides;
* answers are cached briefly (:class:`CachingReviewer`: 10 s for tokens and decisions, allowed
  or denied, as ``--authentication-token-webhook-cache-ttl`` and the delegating authorizer's
  allow/deny TTLs default to), in a bounded LRU keyed by a token's SHA-256, never the token;
* a review that cannot be made (API server unreachable, 5xx, our own RBAC missing) raises
  :class:`ReviewUnavailableError` and is not cached: the caller gets 401/503, never data.

:class:`Reviewer` is the narrow protocol the server depends on; :class:`KubeReviewer` implements
it over the official client's ``AuthenticationV1Api``/``AuthorizationV1Api``, and
:class:`~autoscaler.k8s.fake_reviews.FakeReviewer` in memory for tests.
"""

from __future__ import annotations

import hashlib
import json
import threading
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Generic, Protocol, TypeVar

from autoscaler.clock import Clock
from autoscaler.k8s.errors import translate

K = TypeVar("K")
V = TypeVar("V")

DEFAULT_CACHE_TTL_S = 10.0
DEFAULT_CACHE_ENTRIES = 4096


@dataclass(frozen=True, slots=True)
class Identity:
    """An authenticated caller, as ``user.Info`` and the SubjectAccessReview spec carry it."""

    user: str
    groups: tuple[str, ...] = ()
    uid: str = ""
    extra: tuple[tuple[str, tuple[str, ...]], ...] = ()  # sorted (key, values) pairs

    @staticmethod
    def of(
        user: str,
        groups: Sequence[str] = (),
        uid: str = "",
        extra: Mapping[str, Sequence[str]] | None = None,
    ) -> Identity:
        pairs = tuple(sorted((k, tuple(v)) for k, v in (extra or {}).items()))
        return Identity(user, tuple(groups), uid, pairs)


@dataclass(frozen=True, slots=True)
class RequestAttributes:
    """What a request asks to do: a resource request (``resource`` set) or a non-resource one
    (``path`` only, e.g. discovery)."""

    verb: str  # get, list, watch, …
    path: str
    group: str = ""
    version: str = ""
    resource: str = ""  # empty: a non-resource request
    namespace: str = ""
    name: str = ""

    @property
    def is_resource(self) -> bool:
        return bool(self.resource)

    def describe(self) -> str:
        """The phrase Kubernetes puts in a Forbidden message."""
        if not self.is_resource:
            return f'{self.verb} path "{self.path}"'
        text = f'{self.verb} resource "{self.resource}" in API group "{self.group}"'
        return text + (f' in the namespace "{self.namespace}"' if self.namespace else "")


@dataclass(frozen=True, slots=True)
class AccessDecision:
    allowed: bool
    reason: str = ""


class ReviewUnavailableError(Exception):
    """A review could not be made (the API server is unreachable, failed, or refused us)."""


class Reviewer(Protocol):
    """Who is behind a token, and may an identity do something."""

    def review_token(self, token: str) -> Identity | None:
        """The token's user, or None when the API server does not authenticate it. Raises
        :class:`ReviewUnavailableError` when it cannot tell."""
        ...

    def review_access(self, who: Identity, attributes: RequestAttributes) -> AccessDecision:
        """Raises :class:`ReviewUnavailableError` when the API server cannot tell."""
        ...


# --- the bodies, as the API defines them ------------------------------------------------------


def token_review(token: str, audiences: Sequence[str] = ()) -> dict[str, Any]:
    spec: dict[str, Any] = {"token": token}
    if audiences:
        spec["audiences"] = list(audiences)
    return {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenReview", "spec": spec}


def subject_access_review(who: Identity, attributes: RequestAttributes) -> dict[str, Any]:
    spec: dict[str, Any] = {"user": who.user}
    if who.groups:
        spec["groups"] = list(who.groups)
    if who.uid:
        spec["uid"] = who.uid
    if who.extra:
        spec["extra"] = {k: list(v) for k, v in who.extra}
    a = attributes
    if a.is_resource:
        resource = {
            "verb": a.verb,
            "group": a.group,
            "version": a.version,
            "resource": a.resource,
            "namespace": a.namespace,
        }
        if a.name:
            resource["name"] = a.name
        spec["resourceAttributes"] = resource
    else:
        spec["nonResourceAttributes"] = {"path": a.path, "verb": a.verb}
    return {
        "apiVersion": "authorization.k8s.io/v1",
        "kind": "SubjectAccessReview",
        "spec": spec,
    }


def identity_from_token_review(review: Mapping[str, Any]) -> Identity | None:
    status = review.get("status") or {}
    if not status.get("authenticated"):
        return None
    user = status.get("user") or {}
    if not user.get("username"):
        return None
    return Identity.of(
        str(user["username"]),
        [str(g) for g in user.get("groups") or ()],
        str(user.get("uid") or ""),
        {str(k): [str(x) for x in v] for k, v in (user.get("extra") or {}).items()},
    )


def decision_from_access_review(review: Mapping[str, Any]) -> AccessDecision:
    status = review.get("status") or {}
    reason = str(status.get("reason") or status.get("evaluationError") or "")
    # denied=True or allowed=False: both refuse (no opinion is a refusal here)
    return AccessDecision(bool(status.get("allowed")) and not status.get("denied"), reason)


# --- over the official client -----------------------------------------------------------------


class KubeReviewer:
    """:class:`Reviewer` over the official client (``AuthenticationV1Api``,
    ``AuthorizationV1Api``). Needs ``create`` on ``tokenreviews`` and ``subjectaccessreviews``
    (the ``system:auth-delegator`` ClusterRole)."""

    def __init__(
        self, api_client: Any, timeout_s: float = 5.0, audiences: Sequence[str] = ()
    ) -> None:
        from kubernetes import client

        self.authentication: Any = client.AuthenticationV1Api(api_client)
        self.authorization: Any = client.AuthorizationV1Api(api_client)
        self.timeout_s = timeout_s
        self.audiences = tuple(audiences)

    def _create(self, what: str, call: Callable[[], Any]) -> dict[str, Any]:
        try:
            return dict(json.loads(call().data))
        except Exception as e:  # every failure: no answer, never "allowed"
            error = translate(e, what)
            raise ReviewUnavailableError(str(error)) from e

    def review_token(self, token: str) -> Identity | None:
        body = token_review(token, self.audiences)
        review = self._create(
            "create TokenReview",
            lambda: self.authentication.create_token_review(
                body, _preload_content=False, _request_timeout=self.timeout_s
            ),
        )
        who = identity_from_token_review(review)
        if who is not None and self.audiences:
            granted = set((review.get("status") or {}).get("audiences") or ())
            if not granted & set(self.audiences):
                return None  # authenticated, but for another audience
        return who

    def review_access(self, who: Identity, attributes: RequestAttributes) -> AccessDecision:
        body = subject_access_review(who, attributes)
        review = self._create(
            "create SubjectAccessReview",
            lambda: self.authorization.create_subject_access_review(
                body, _preload_content=False, _request_timeout=self.timeout_s
            ),
        )
        return decision_from_access_review(review)


# --- the cache --------------------------------------------------------------------------------


class _TTLCache(Generic[K, V]):
    """A bounded LRU whose entries expire ``ttl_s`` after they were stored (clock seconds)."""

    def __init__(self, clock: Clock, ttl_s: float, max_entries: int) -> None:
        self.clock = clock
        self.ttl_s = ttl_s
        self.max_entries = max_entries
        self.hits = 0
        self.misses = 0
        self._lock = threading.Lock()
        self._entries: OrderedDict[K, tuple[float, V]] = OrderedDict()

    def get(self, key: K) -> tuple[V] | None:
        """``(value,)`` while fresh, else None."""
        with self._lock:
            entry = self._entries.get(key)
            if entry is not None and self.clock.now() >= entry[0]:
                del self._entries[key]
                entry = None
            if entry is None:
                self.misses += 1
                return None
            self.hits += 1
            self._entries.move_to_end(key)
            return (entry[1],)

    def put(self, key: K, value: V) -> None:
        if self.ttl_s <= 0 or self.max_entries <= 0:
            return
        with self._lock:
            self._entries[key] = (self.clock.now() + self.ttl_s, value)
            self._entries.move_to_end(key)
            while len(self._entries) > self.max_entries:
                self._entries.popitem(last=False)

    def __len__(self) -> int:
        with self._lock:
            return len(self._entries)


def _through(cache: _TTLCache[K, V], key: K, review: Callable[[], V]) -> V:
    found = cache.get(key)
    if found is not None:
        return found[0]
    fresh = review()  # raises ReviewUnavailableError: nothing is cached
    cache.put(key, fresh)
    return fresh


class CachingReviewer:
    """Reuses a :class:`Reviewer`'s answers for ``ttl_s`` (both kinds: authenticated or not,
    allowed or denied); failures are not cached. At most ``max_entries`` tokens and as many
    decisions are kept, least recently used first out.

    Worked example: a client polling one metric every 2 s with a token costs, at the default
    10 s TTL, one TokenReview and one SubjectAccessReview per 10 s instead of five of each."""

    def __init__(
        self,
        inner: Reviewer,
        clock: Clock,
        ttl_s: float = DEFAULT_CACHE_TTL_S,
        max_entries: int = DEFAULT_CACHE_ENTRIES,
    ) -> None:
        self.inner = inner
        self._tokens: _TTLCache[str, Identity | None] = _TTLCache(clock, ttl_s, max_entries)
        self._access: _TTLCache[tuple[Identity, RequestAttributes], AccessDecision] = _TTLCache(
            clock, ttl_s, max_entries
        )

    def review_token(self, token: str) -> Identity | None:
        key = hashlib.sha256(token.encode()).hexdigest()
        return _through(self._tokens, key, lambda: self.inner.review_token(token))

    def review_access(self, who: Identity, attributes: RequestAttributes) -> AccessDecision:
        return _through(
            self._access, (who, attributes), lambda: self.inner.review_access(who, attributes)
        )

    @property
    def hits(self) -> int:
        return self._tokens.hits + self._access.hits

    @property
    def misses(self) -> int:
        return self._tokens.misses + self._access.misses
