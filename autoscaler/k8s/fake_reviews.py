"""A cluster's authenticator and authorizer in memory — a *fake*, for tests: a token table and
RBAC-like allow rules.

Why: TokenReview and SubjectAccessReview answers come from the kube-apiserver's authenticators
and RBAC, neither of which runs here. :class:`FakeAuthorities` holds what a test declares —
which token is which user, and which (user or group, verb, API group, resource, namespace) or
(user or group, verb, path) is allowed — and answers both reviews from it. The fake API server
(:mod:`autoscaler.k8s.fake_apiserver`) serves those answers over HTTP at the real review
endpoints; :class:`FakeReviewer` gives them in process, as a
:class:`~autoscaler.k8s.reviews.Reviewer`, for unit tests that need no HTTP.

Like RBAC, rules only allow: what no rule allows is refused (``allowed: false``, no reason).
"""

from __future__ import annotations

import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from autoscaler.k8s.reviews import (
    AccessDecision,
    Identity,
    RequestAttributes,
    ReviewUnavailableError,
)


def _matches(patterns: Sequence[str], value: str) -> bool:
    return "*" in patterns or value in patterns


def _path_matches(patterns: Sequence[str], path: str) -> bool:
    """RBAC's nonResourceURLs: exact, or a prefix ending in ``*``."""
    return any(p == path or (p.endswith("*") and path.startswith(p[:-1])) for p in patterns)


@dataclass(frozen=True, slots=True)
class AccessRule:
    """One grant: to ``users`` and/or ``groups``, the ``verbs`` on either resources (``paths``
    empty) or non-resource ``paths``. ``"*"`` matches anything; a path may end in ``*``.

    ``AccessRule(groups=("hpa",), verbs=("list",), api_groups=("external.metrics.k8s.io",),
    resources=("sloscaler_desired_replicas",), namespaces=("llm",))`` lets group ``hpa`` read
    that metric in ``llm`` only."""

    users: tuple[str, ...] = ()
    groups: tuple[str, ...] = ()
    verbs: tuple[str, ...] = ("*",)
    api_groups: tuple[str, ...] = ("*",)
    resources: tuple[str, ...] = ("*",)
    namespaces: tuple[str, ...] = ("*",)  # "*" also covers cluster-scoped requests
    paths: tuple[str, ...] = ()  # non-empty: a rule for non-resource requests

    def grants(self, who: Identity, attributes: RequestAttributes) -> bool:
        if who.user not in self.users and not set(who.groups) & set(self.groups):
            return False
        if not _matches(self.verbs, attributes.verb):
            return False
        if not attributes.is_resource:
            return bool(self.paths) and _path_matches(self.paths, attributes.path)
        return (
            not self.paths
            and _matches(self.api_groups, attributes.group)
            and _matches(self.resources, attributes.resource)
            and _matches(self.namespaces, attributes.namespace)
        )


class FakeAuthorities:
    """Tokens and rules; thread-safe (the fake API server answers from several threads)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._tokens: dict[str, Identity] = {}
        self._rules: list[AccessRule] = []

    def add_token(
        self,
        token: str,
        user: str,
        groups: Sequence[str] = (),
        uid: str = "",
        extra: Mapping[str, Sequence[str]] | None = None,
    ) -> Identity:
        """``token`` authenticates as ``user`` (plus ``system:authenticated``, as the API server
        adds to every authenticated user)."""
        all_groups = [
            *groups,
            *(() if "system:authenticated" in groups else ("system:authenticated",)),
        ]
        who = Identity.of(user, all_groups, uid, extra)
        with self._lock:
            self._tokens[token] = who
        return who

    def revoke(self, token: str) -> None:
        with self._lock:
            self._tokens.pop(token, None)

    def allow(self, *rules: AccessRule) -> None:
        with self._lock:
            self._rules.extend(rules)

    def clear_rules(self) -> None:
        with self._lock:
            self._rules.clear()

    def authenticate(self, token: str) -> Identity | None:
        with self._lock:
            return self._tokens.get(token)

    def authorize(self, who: Identity, attributes: RequestAttributes) -> AccessDecision:
        with self._lock:
            rules = list(self._rules)
        for i, rule in enumerate(rules):
            if rule.grants(who, attributes):
                return AccessDecision(True, f"allowed by fake rule {i}")
        return AccessDecision(False, "")


class FakeReviewer:
    """:class:`~autoscaler.k8s.reviews.Reviewer` answering from :class:`FakeAuthorities` in
    process; counts the reviews it makes, and fails every one while ``unavailable``."""

    def __init__(self, authorities: FakeAuthorities | None = None) -> None:
        self.authorities = authorities or FakeAuthorities()
        self.unavailable = False
        self.token_reviews = 0
        self.access_reviews = 0

    def review_token(self, token: str) -> Identity | None:
        self.token_reviews += 1
        if self.unavailable:
            raise ReviewUnavailableError("create TokenReview: the API server is unavailable")
        return self.authorities.authenticate(token)

    def review_access(self, who: Identity, attributes: RequestAttributes) -> AccessDecision:
        self.access_reviews += 1
        if self.unavailable:
            raise ReviewUnavailableError(
                "create SubjectAccessReview: the API server is unavailable"
            )
        return self.authorities.authorize(who, attributes)
