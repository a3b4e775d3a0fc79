"""Against a real Prefect server: `prefect server start` on a free port with its own PREFECT_HOME,
`pipelines.serve.serve` in a background process, runs started through the API as the UI does."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import numpy as np
import pytest
import yaml
from prefect import get_client
from prefect.deployments import run_deployment
from prefect.exceptions import ObjectNotFound, PrefectHTTPStatusError
from prefect.settings import PREFECT_API_URL, temporary_settings

from ftvsr.errors import FTVSRError
from ftvsr.io.frames import list_frames, write_clip
from pipelines.prefect_server import prefect_server as start_prefect_server
from pipelines.serve import check_server, serve

ROOT = Path(__file__).resolve().parents[1]
PROFILE = "tiny"
START_TIMEOUT_S = 60

pytestmark = pytest.mark.slow


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _stop(process: subprocess.Popen, grace_s: float = 10) -> None:
    """Stop a process started in its own session, and its children: SIGTERM, then SIGKILL."""
    if process.poll() is not None:
        return
    for sig, wait_s in ((signal.SIGTERM, grace_s), (signal.SIGKILL, 5)):
        try:
            os.killpg(process.pid, sig)
        except ProcessLookupError:
            return
        try:
            process.wait(timeout=wait_s)
            return
        except subprocess.TimeoutExpired:
            continue


def _wait_until(check, what: str, process: subprocess.Popen, log: Path, timeout_s: float = START_TIMEOUT_S):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"{what}: the process exited ({process.returncode}):\n{log.read_text()[-3000:]}")
        try:
            result = check()
            if result:
                return result
        except (httpx.HTTPError, ObjectNotFound):
            pass
        time.sleep(0.5)
    pytest.fail(f"{what}: not ready after {timeout_s} s:\n{log.read_text()[-3000:]}")


@pytest.fixture()
def environment(tmp_path) -> dict[str, str]:
    return {
        **os.environ,
        "PREFECT_HOME": str(tmp_path / "prefect-home"),
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "PREFECT_RUNNER_POLL_FREQUENCY": "1",
        "PREFECT_LOGGING_LEVEL": "INFO",
    }


@pytest.fixture()
def prefect_server(tmp_path, environment):
    """`prefect server start` on a free port (pipelines.prefect_server); its API URL. Stopped at the end."""
    with start_prefect_server(home=tmp_path / "prefect-home", timeout_s=START_TIMEOUT_S, env=environment) as url:
        yield url


@pytest.fixture()
def tiny_project(tmp_path) -> dict[str, Path]:
    """An HR root with train/a, train/b and test/set1/c (3 frames of 64x64) and a params file of profile 'tiny'."""
    rng = np.random.default_rng(0)
    hr = tmp_path / "hr"
    for name in ("train/a", "train/b", "test/set1/c"):
        write_clip(hr / name, rng.integers(0, 256, (3, 64, 64, 3), dtype=np.uint8))
    params = yaml.safe_load((ROOT / "profiles" / "sample.yaml").read_text())
    params["profile"] = PROFILE
    params["data"]["workers"] = 2
    params_file = tmp_path / "params.yaml"
    params_file.write_text(yaml.safe_dump(params, sort_keys=False))
    return {"hr": hr, "params": params_file, "root": tmp_path}


def test_serve_refuses_an_unreachable_server_naming_it():
    url = f"http://127.0.0.1:{_free_port()}/api"
    started = time.monotonic()
    with pytest.raises(FTVSRError, match=f"no Prefect server answers at {url}"):
        serve(api=url, timeout_s=2)
    assert time.monotonic() - started < 10
    with pytest.raises(FTVSRError):
        check_server("http://127.0.0.1:9/api", timeout_s=1)


def test_prefect_server_runs_a_served_deployment_and_rejects_invalid_parameters(
    prefect_server, tiny_project, environment, tmp_path
):
    log = tmp_path / "serve.log"
    with log.open("w") as out:
        served = subprocess.Popen(
            [
                sys.executable,
                "-c",
                "import sys; from pipelines.serve import serve; serve(params_file=sys.argv[1], api=sys.argv[2])",
                str(tiny_project["params"]),
                prefect_server,
            ],
            # No PREFECT_API_URL: `serve` passes its `api` on to the runs it starts.
            cwd=ROOT,
            env={k: v for k, v in environment.items() if k != "PREFECT_API_URL"},
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        with temporary_settings({PREFECT_API_URL: prefect_server}):

            def deployed() -> bool:
                with get_client(sync_client=True) as client:
                    names = {f"degrade/{PROFILE}", f"ftvsr-pipeline/{PROFILE}", f"compress/{PROFILE}"}
                    return all(client.read_deployment_by_name(name) for name in names)

            _wait_until(deployed, "serve", served, log)

            dst = tiny_project["root"] / "lr" / "raw"
            run = run_deployment(
                f"degrade/{PROFILE}",
                parameters={
                    "src": str(tiny_project["hr"]),
                    "dst": str(dst),
                    "params_file": str(tiny_project["params"]),
                },
                timeout=90,
                poll_interval=1,
            )
            assert run.state is not None and run.state.is_completed(), f"{run.state}\n{log.read_text()[-3000:]}"
            for name in ("train/a", "train/b", "test/set1/c"):
                assert len(list_frames(dst / name)) == 3
            with get_client(sync_client=True) as client:
                served_run = client.read_flow_run(run.id)
            assert served_run.parameters["params_file"] == str(tiny_project["params"])
            assert served_run.name == "degrade"  # named after its DVC stage, as under `dvc repro`

            # Refused by the server before a run exists: the flows' signatures are the schema.
            nowhere = tiny_project["root"] / "never"
            for deployment, parameters in (
                (f"degrade/{PROFILE}", {"dst": str(nowhere), "workers": 0}),
                (f"degrade/{PROFILE}", {"dst": str(nowhere), "task_runner": "gpu"}),
                (f"ftvsr-pipeline/{PROFILE}", {"root": str(nowhere), "crfs": [15, 99]}),
            ):
                with pytest.raises(PrefectHTTPStatusError, match="409"):
                    run_deployment(deployment, parameters=parameters, timeout=0)
            # Accepted by the schema, refused by the flow before any work, with its one line.
            run = run_deployment(
                f"degrade/{PROFILE}",
                parameters={
                    "src": str(tiny_project["root"] / "missing"),
                    "dst": str(nowhere),
                    "params_file": str(tiny_project["params"]),
                },
                timeout=90,
                poll_interval=1,
            )
            assert run.state is not None and run.state.is_failed()
            assert "input folder not found" in run.state.message
            assert not nowhere.exists()
    finally:
        _stop(served)
