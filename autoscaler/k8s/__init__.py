"""Everything Kubernetes: the controller that reconciles SLOPolicies, its API client adapter, and
an in-memory API server fake that speaks real HTTP to the official client.

Only the adapters talk to the Kubernetes API (kopf's rule): :mod:`autoscaler.k8s.client` for
the controller, which sees the narrow :class:`~autoscaler.k8s.client.Cluster` protocol and the
package's own errors (:mod:`autoscaler.k8s.errors`), so retryable and terminal failures are told
apart in one place; and :mod:`autoscaler.k8s.reviews` for the external metrics API's
TokenReviews and SubjectAccessReviews, behind the narrow ``Reviewer`` protocol.
"""
