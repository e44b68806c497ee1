"""The sloscaler controller: control loop, adapters (Prometheus, Kubernetes, simulator), CLI.

This package wires the pure decision core (``policies``), the learning half (``predictor``) and the
world it acts on (a Kubernetes cluster, or the ``simulator``).
"""
