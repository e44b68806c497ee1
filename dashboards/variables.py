"""The dashboards' template variables and the label matchers that use them.

Why one module: every dashboard filters the same way — a Prometheus data source, one namespace,
some SLOPolicies, their pools, accelerators and the model they serve — and every variable must
resolve from data Prometheus already holds (``label_values`` on the controller's series), so the
dashboards need no configuration beyond picking a data source. Defining each variable and the
matchers built on it once keeps the four dashboards' filters identical.

Variables resolve in the order they are listed, each from the ones before it:

* ``datasource`` — any Prometheus data source;
* ``namespace`` — ``label_values(sloscaler_desired_replicas, namespace)``;
* ``policy`` — the SLOPolicies of that namespace (multi, All by default);
* ``pool`` and ``accelerator`` — their pools and the pools' accelerators (multi, All);
* ``model`` — hidden: the models those policies serve, from ``sloscaler_policy_info``. It joins a
  policy to its gateway and vLLM series, which carry ``model_name``, not ``policy``;
* ``predictor`` (Predictor only) — the scrape job of the predictor service,
  ``label_values(sloscaler_predictor_model_ready, job)``. The service runs in its own namespace,
  not the SLOPolicies', so its series are selected by job and accelerator, not by namespace.
"""

from __future__ import annotations

from dashboards.sdk import builder, common_models, models

DATASOURCE = common_models.DataSourceRef(type_val="prometheus", uid="${datasource}")

#: The controller's per-policy series of the selected policies.
POLICY = 'namespace="$namespace", policy=~"$policy"'
#: … of the selected pools.
POOL = POLICY + ', pool=~"$pool"'
#: … of the selected accelerators.
ACCELERATOR = POLICY + ', accelerator=~"$accelerator"'
#: vLLM and gateway series of the selected policies' models.
MODEL = 'namespace="$namespace", model_name=~"$model"'
#: The predictor service's series.
PREDICTOR = 'job="$predictor"'
#: … per accelerator, of the selected accelerators.
PREDICTOR_ACCELERATOR = PREDICTOR + ', accelerator=~"$accelerator"'


def with_pool_labels(vllm: str, selector: str = ACCELERATOR, labels: str = "accelerator") -> str:
    """``vllm`` (an expression over vLLM series) restricted to the pools ``selector`` picks, with
    those pools' ``labels`` (e.g. ``accelerator``, ``policy``) copied on.

    The PodMonitor of ``deploy/base/monitoring.yaml`` labels a pod's series with ``namespace``
    and ``pool`` = the name of the workload it belongs to; ``sloscaler_pool_info`` carries that
    name as ``target``; renamed to ``pool``, it matches each vLLM series to its pool's info series.
    """
    info = f'label_replace(sloscaler_pool_info{{{selector}}}, "pool", "$1", "target", "(.*)")'
    return f"{vllm} * on (namespace, pool) group_left ({labels}) {info}"


_ALL = models.VariableOption(selected=True, text=["All"], value=["$__all"])


def datasource() -> builder.DatasourceVariable:
    """Any Prometheus data source; every panel and variable query uses it."""
    return builder.DatasourceVariable("datasource").label("Data source").type("prometheus")


def _label_values(
    name: str, label: str, query: str, *, multi: bool, description: str
) -> builder.QueryVariable:
    expr = f"label_values({query}, {label})"
    var = (
        builder.QueryVariable(name)
        .label(name.capitalize())
        .description(description)
        .datasource(DATASOURCE)
        .query(expr)
        .definition(expr)
        .refresh(models.VariableRefresh.ON_TIME_RANGE_CHANGED)
        .sort(models.VariableSort.ALPHABETICAL_ASC)
    )
    if multi:
        var = var.multi(True).include_all(True).current(_ALL)
    return var


def namespace() -> builder.QueryVariable:
    return _label_values(
        "namespace",
        "namespace",
        "sloscaler_desired_replicas",
        multi=False,
        description="Namespace of the SLOPolicies",
    )


def policy() -> builder.QueryVariable:
    return _label_values(
        "policy",
        "policy",
        'sloscaler_desired_replicas{namespace="$namespace"}',
        multi=True,
        description="SLOPolicies to show",
    )


def pool() -> builder.QueryVariable:
    return _label_values(
        "pool",
        "pool",
        f"sloscaler_desired_replicas{{{POLICY}}}",
        multi=True,
        description="Pools of the selected SLOPolicies",
    )


def accelerator() -> builder.QueryVariable:
    return _label_values(
        "accelerator",
        "accelerator",
        f"sloscaler_desired_replicas{{{POLICY}}}",
        multi=True,
        description="Accelerator types of the selected SLOPolicies' pools",
    )


def model() -> builder.QueryVariable:
    return _label_values(
        "model",
        "model",
        f"sloscaler_policy_info{{{POLICY}}}",
        multi=True,
        description="Models the selected SLOPolicies serve (joins them to vLLM's model_name)",
    ).hide(models.VariableHide.HIDE_VARIABLE)


def predictor() -> builder.QueryVariable:
    return _label_values(
        "predictor",
        "job",
        "sloscaler_predictor_model_ready",
        multi=False,
        description="Scrape job of the predictor service",
    )
