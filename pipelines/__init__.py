"""Prefect flows, one per pipeline stage; each DVC stage runs one (`python -m pipelines.<stage>`).

`pipeline.py` runs them all in dvc.yaml's order (for the Prefect UI), `serve.py` deploys them,
`_common.py` holds what they share (task runners, retries, caching: read its docstring).
"""

import os

# Pipelines often run offline: Prefect's ephemeral server must not try to send telemetry.
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
