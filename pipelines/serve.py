"""Deployments for the Prefect UI: `ftvsr-pipeline` and every stage flow, served from this machine.

    prefect server start          # the UI and its API: http://127.0.0.1:4200, API .../api
    ftvsr serve                   # in the project folder; runs until Ctrl-C

Each deployment is named after the profile of the params file (``ftvsr-pipeline/sample``,
``degrade/sample``, ...); its parameters default to that profile's paths (dvc.yaml's, through
`stage_paths`), so "Run" in the UI starts a run at once and "Custom run" changes any parameter
(the CRF list, the task runner, the workers). The server validates the parameters against each
flow's signature before a run is created (a CRF outside 0..51, workers < 1 and an unknown task
runner are refused); the flows check the rest before any work. Runs execute here, in the folder
`serve` was started from, in a subprocess each.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import httpx
import prefect
from prefect import Flow
from prefect.deployments.runner import EntrypointType, RunnerDeployment
from prefect.settings import PREFECT_API_URL, temporary_settings

from ftvsr.errors import FTVSRError
from ftvsr.params import PARAMS_FILE, load_params
from pipelines.compress import compress_flow
from pipelines.degrade import degrade_flow
from pipelines.evaluate import evaluate_flow
from pipelines.fetch import fetch_flow
from pipelines.pack import pack_flow
from pipelines.pipeline import pipeline_flow, stage_paths
from pipelines.report import report_flow
from pipelines.train import train_flow

LOCAL_API_URL = "http://127.0.0.1:4200/api"  # what `prefect server start` serves


def api_url() -> str:
    """The Prefect API to serve to: ``PREFECT_API_URL`` when set, else the local server's."""
    return PREFECT_API_URL.value() or LOCAL_API_URL


def check_server(url: str, timeout_s: float = 3.0) -> None:
    """Raise FTVSRError naming `url` unless a Prefect server answers its health check within `timeout_s`."""
    health = url.rstrip("/") + "/health"
    try:
        response = httpx.get(health, timeout=timeout_s)
    except httpx.HTTPError as err:
        raise FTVSRError(
            f"no Prefect server answers at {url} ({type(err).__name__}): start one with "
            f"`prefect server start`, or point PREFECT_API_URL at yours"
        ) from None
    if response.status_code != 200:
        raise FTVSRError(f"{health} answered HTTP {response.status_code}: is {url} a Prefect API URL (ending in /api)?")


def deployments(params_file: str | os.PathLike = PARAMS_FILE, root: str | os.PathLike = ".") -> list[RunnerDeployment]:
    """One deployment per flow, named after the profile of `params_file`, with its paths as defaults."""
    params_file = Path(params_file)
    profile = load_params(params_file).profile
    paths = stage_paths(profile, root)
    common = {"params_file": str(params_file)}
    defaults: dict[Flow[..., Any], dict[str, str]] = {
        pipeline_flow: {"root": str(paths.root)},
        fetch_flow: {"out": str(paths.hr), "dataset_lr": str(paths.dataset_lr)},
        degrade_flow: {"src": str(paths.hr), "dst": str(paths.lr_raw), "dataset_lr": str(paths.dataset_lr)},
        # dst and crf, and evaluate's set and level, go together: asked for, never guessed.
        compress_flow: {"src": str(paths.lr_raw)},
        pack_flow: {"hr": str(paths.hr_train), "lr": str(paths.lr_root), "dst": str(paths.lmdb)},
        train_flow: {"lmdb": str(paths.lmdb), "out": str(paths.model), "work_dir": str(paths.work_dir)},
        evaluate_flow: {"weights": str(paths.model)},
        report_flow: {
            "results": str(paths.results_root),
            "bitrates": str(paths.lr_root),
            "model": str(paths.model),
            "out": str(paths.reports),
        },
    }
    made: list[RunnerDeployment] = []
    for flow, parameters in defaults.items():
        deployment = flow.to_deployment(
            name=profile,
            parameters={**common, **parameters},
            tags=["ftvsr", profile],
            # The module path works from any folder where the project is installed.
            entrypoint_type=EntrypointType.MODULE_PATH,
        )
        if not isinstance(deployment, RunnerDeployment):  # Prefect's async variant, inside an event loop
            raise RuntimeError("deployments() must be called outside an event loop")
        made.append(deployment)
    return made


def serve(
    params_file: Path = PARAMS_FILE,
    api: str | None = None,
    root: Path = Path("."),
    limit: int | None = None,
    timeout_s: float = 3.0,
) -> None:
    """Serve every deployment to the Prefect server at `api` (default: `api_url()`); blocks until interrupted.

    Args:
        params_file: its profile names the deployments and gives their default paths.
        api: the server's API URL, e.g. http://127.0.0.1:4200/api.
        root: the project folder the default paths are relative to.
        limit: flow runs at a time (None: no limit).
        timeout_s: how long the server has to answer its health check.
    Raises:
        FTVSRError: the server does not answer (naming its address), or the params file is invalid.
    """
    url = api or api_url()
    check_server(url, timeout_s)
    served = deployments(params_file, root)
    os.environ["PREFECT_API_URL"] = url  # the flow runs this starts, in subprocesses, report to the same server
    with temporary_settings(updates={PREFECT_API_URL: url}):
        prefect.serve(*served, limit=limit)
