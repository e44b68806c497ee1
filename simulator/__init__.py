"""A vLLM-faithful simulated cluster: the world sloscaler is tested, demonstrated and measured on.

Users run it to see what a policy would do to their traffic before they trust automation; the
project's claims are measured on it. See ``docs/simulator.md`` for the model and its calibration.
"""
