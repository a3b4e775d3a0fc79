"""Prefect flows, one per pipeline stage; each DVC stage runs one (`python -m pipelines.<stage>`)."""
import os

# These machines have no internet: Prefect's ephemeral server must not try to send telemetry.
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
