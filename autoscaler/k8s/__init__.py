"""Everything Kubernetes: the controller that reconciles SLOPolicies, its API client adapter, and
an in-memory API server fake that speaks real HTTP to the official client.

Only :mod:`autoscaler.k8s.client` talks to the Kubernetes API (kopf's rule); the controller sees
the narrow :class:`~autoscaler.k8s.client.Cluster` protocol and the package's own errors
(:mod:`autoscaler.k8s.errors`), so retryable and terminal failures are told apart in one place.
"""
