"""What the Prefect UI shows of a stage, read back from a real Prefect API (`prefect server start`,
the session's `prefect_api_url`): flow runs named after the DVC stage and experiment, the
library's log lines in the run's logs, results as artifacts."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import time
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from uuid import UUID

import httpx
import numpy as np
import pandas as pd
import pytest
import yaml
from prefect import flow, get_client
from prefect.client.schemas.filters import (
    ArtifactFilter,
    ArtifactFilterFlowRunId,
    FlowFilter,
    FlowFilterName,
    LogFilter,
    LogFilterFlowRunId,
)
from prefect.client.schemas.sorting import FlowRunSort
from prefect.logging.handlers import APILogHandler, APILogWorker
from prefect.settings import PREFECT_API_URL, temporary_settings

import pipelines._common
from ftvsr.io.frames import write_clip
from pipelines._common import (
    LIBRARY_LOGGER,
    artifact_key,
    publish_link,
    publish_markdown,
    publish_table,
    stage_flow_run_name,
    stage_run_name,
)
from pipelines.compress import compress_flow

ROOT = Path(__file__).resolve().parents[1]
CLIPS = ("train/a", "test/set1/b")
CRF = 30


@pytest.fixture()
def raw_lr(tmp_path) -> dict[str, Path]:
    """A raw-LR root of two clips (3 frames of 32x32) and a params file: the compress stage's input."""
    rng = np.random.default_rng(0)
    src = tmp_path / "lr" / "raw"
    for clip in CLIPS:
        write_clip(src / clip, rng.integers(0, 256, (3, 32, 32, 3), dtype=np.uint8))
    params = yaml.safe_load((ROOT / "profiles" / "sample.yaml").read_text())
    params["data"]["workers"] = 1
    params_file = tmp_path / "params.yaml"
    params_file.write_text(yaml.safe_dump(params, sort_keys=False))
    return {"src": src, "dst": tmp_path / "lr" / str(CRF), "params": params_file}


@pytest.fixture()
def no_dvc(monkeypatch) -> None:
    """Outside DVC, whatever runs these tests (a `dvc exp run` of them, say)."""
    monkeypatch.delenv("DVC_STAGE", raising=False)
    monkeypatch.delenv("DVC_EXP_NAME", raising=False)


@pytest.fixture()
def api(prefect_api_url) -> Iterator[str]:
    """This process talks to the session's server; its queued logs are sent before the server stops."""
    with temporary_settings({PREFECT_API_URL: prefect_api_url}):
        yield prefect_api_url
        APILogWorker.drain_all(timeout=5)


def _until(read: Callable[[], Any], timeout_s: float = 20) -> Any:
    """`read()` once it returns something: logs and states reach the API in the background."""
    deadline = time.monotonic() + timeout_s
    while not (found := read()) and time.monotonic() < deadline:
        time.sleep(0.3)
    return found


def _latest_run(flow_name: str) -> Any:
    """The latest run of the flow `flow_name`."""
    with get_client(sync_client=True) as client:
        runs = client.read_flow_runs(
            flow_filter=FlowFilter(name=FlowFilterName(any_=[flow_name])), sort=FlowRunSort.START_TIME_DESC, limit=1
        )
    return runs[0] if runs else None


def _logs(flow_run_id: UUID) -> list:
    with get_client(sync_client=True) as client:
        return client.read_logs(log_filter=LogFilter(flow_run_id=LogFilterFlowRunId(any_=[flow_run_id])))


def _artifacts(flow_run_id: UUID) -> dict[str, Any]:
    """The run's artifacts by key."""
    with get_client(sync_client=True) as client:
        found = client.read_artifacts(
            artifact_filter=ArtifactFilter(flow_run_id=ArtifactFilterFlowRunId(any_=[flow_run_id]))
        )
    return {artifact.key: artifact for artifact in found}


def test_a_dvc_stage_shows_its_name_experiment_library_logs_and_bitrate_table(api, raw_lr):
    """The compress stage as `dvc exp run` starts it: its entry point in a process of its own, with
    the variables DVC sets (checked against DVC 3.67: DVC_STAGE for every stage, DVC_EXP_NAME
    under `dvc exp run`)."""
    command = [sys.executable, "-m", "pipelines.compress", "--crf", str(CRF)]
    command += ["--src", str(raw_lr["src"]), "--dst", str(raw_lr["dst"]), "--params", str(raw_lr["params"])]
    environment = {
        **os.environ,
        "PREFECT_API_URL": api,
        "PREFECT_LOGGING_LEVEL": "INFO",
        "DVC_STAGE": f"compress@{CRF}",
        "DVC_EXP_NAME": "tiny-ablation",
    }
    result = subprocess.run(command, cwd=ROOT, env=environment, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "ftvsr.data.compress" in result.stderr  # the library's lines are on the console too

    run = _latest_run("compress")
    assert run is not None and run.name == f"compress@{CRF} [exp tiny-ablation]"
    logs = _until(lambda: [log for log in _logs(run.id) if log.name == "ftvsr.data.compress"])
    assert len(logs) == len(CLIPS), [log.message for log in _logs(run.id)]
    assert all(log.task_run_id is not None and log.level == logging.INFO for log in logs)  # under its clip's task
    assert any(f"CRF {CRF}" in log.message and "kbit/s" in log.message for log in logs)

    artifact = _artifacts(run.id)[f"compress-sample-{CRF}"]
    assert artifact.type == "table" and f"CRF {CRF}" in artifact.description
    rows = json.loads(artifact.data)
    assert sorted(row["clip"] for row in rows) == sorted(CLIPS)
    assert all(row["kbit/s"] > 0 and row["frames"] == 3 for row in rows)


def test_outside_dvc_a_run_is_named_from_its_arguments_as_dvc_yaml_names_the_stage(api, raw_lr, no_dvc, monkeypatch):
    state = compress_flow(raw_lr["src"], raw_lr["dst"], CRF, raw_lr["params"], return_state=True)
    assert state.is_completed()
    with get_client(sync_client=True) as client:
        assert client.read_flow_run(state.state_details.flow_run_id).name == f"compress@{CRF}"

    assert stage_run_name("report") == "report"
    monkeypatch.setenv("DVC_EXP_NAME", "crf-sweep")
    assert stage_run_name("evaluate@carphone-35") == "evaluate@carphone-35 [exp crf-sweep]"
    monkeypatch.setenv("DVC_STAGE", "evaluate@carphone-raw")  # DVC's own name wins
    assert stage_run_name("evaluate@wrong") == "evaluate@carphone-raw [exp crf-sweep]"


@flow(name="ui-probe", flow_run_name=stage_flow_run_name("evaluate@{dataset}-{level}"))
def _publishing_flow(dataset: str, level: str) -> list[Any]:
    """What pipelines/evaluate.py and pipelines/report.py publish, on made-up results."""
    logging.getLogger("ftvsr.evaluate").info("evaluated %s at %s", dataset, level)
    clips = pd.DataFrame(
        {"clip": ["carphone"], "psnr": [np.float64(24.51)], "ssim": [np.float32(0.7745)], "frames": [np.int64(60)]}
    )
    report = "# Results\n\n| input | PSNR |\n| --- | --- |\n| raw | 24.51 |\n"
    return [
        publish_table(artifact_key("evaluate", "sample", dataset, level), clips, "FTVSR and bicubic, per clip"),
        publish_markdown(artifact_key("report", "sample"), report, "the report"),
        publish_link("mlflow-sample", "http://127.0.0.1:5000/#/experiments/1/runs/abc", "MLflow run abc"),
    ]


def test_results_are_published_as_artifacts_of_the_run(api, no_dvc):
    state = _publishing_flow("carphone", "35", return_state=True)
    assert state.is_completed() and all(state.result())
    run_id = state.state_details.flow_run_id
    with get_client(sync_client=True) as client:
        assert client.read_flow_run(run_id).name == "evaluate@carphone-35"
    artifacts = _artifacts(run_id)
    logs = _until(lambda: [log for log in _logs(run_id) if log.name == "ftvsr.evaluate"])

    assert set(artifacts) == {"evaluate-sample-carphone-35", "report-sample", "mlflow-sample"}
    table = artifacts["evaluate-sample-carphone-35"]
    assert table.type == "table" and table.description == "FTVSR and bicubic, per clip"
    (row,) = json.loads(table.data)
    assert row == {"clip": "carphone", "psnr": 24.51, "ssim": pytest.approx(0.7745), "frames": 60}
    assert artifacts["report-sample"].type == "markdown" and artifacts["report-sample"].data.startswith("# Results")
    link = artifacts["mlflow-sample"]
    # Prefect stores a link as markdown: [text](url)
    assert link.type == "markdown" and link.data == "[MLflow run abc](http://127.0.0.1:5000/#/experiments/1/runs/abc)"
    assert [log.message for log in logs] == ["evaluated carphone at 35"]


@flow(name="ui-probe-refused")
def _refused_publishing_flow() -> Any:
    return publish_table("compress-sample-25", [{"clip": "a", "kbit/s": 1.0}])


def test_an_artifact_the_api_refuses_is_a_warning_not_a_failed_stage(api, no_dvc, monkeypatch, caplog):
    def refuse(**arguments: Any) -> UUID:
        request = httpx.Request("POST", f"{api}/artifacts/")
        raise httpx.HTTPStatusError("422 Unprocessable Entity", request=request, response=httpx.Response(422))

    monkeypatch.setattr(pipelines._common, "create_table_artifact", refuse)
    state = _refused_publishing_flow(return_state=True)
    assert state.is_completed() and state.result() is None
    assert "could not publish the table artifact 'compress-sample-25'" in caplog.text


def test_publishing_and_library_logs_outside_a_run_are_quiet_no_ops():
    """The library and the helpers also run outside Prefect (the `ftvsr` CLI, tests): nothing to send, no warning."""
    assert any(isinstance(handler, APILogHandler) for handler in logging.getLogger(LIBRARY_LOGGER).handlers)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        logging.getLogger("ftvsr.data.degrade").info("outside any run")
        assert publish_table("t", [{"a": 1}]) is None
        assert publish_markdown("m", "# m") is None
        assert publish_link("l", "http://example.org") is None


@pytest.mark.parametrize(
    ("parts", "key"),
    [
        (("evaluate", "carphone", "raw"), "evaluate-carphone-raw"),
        (("evaluate", "REDS4", 35), "evaluate-reds4-35"),
        (("compress@25",), "compress-25"),
        (("  report  ", "", "MLflow run"), "report-mlflow-run"),
    ],
)
def test_artifact_keys_are_lowercase_letters_digits_and_dashes(parts, key):
    assert artifact_key(*parts) == key


def test_a_table_with_infinite_or_missing_values_stays_readable_json():
    from pipelines._common import _rows

    rows = _rows({"clip": ["a", "b"], "psnr": [float("inf"), float("nan")], "path": [Path("x"), None]})
    assert rows == [{"clip": "a", "psnr": "inf", "path": "x"}, {"clip": "b", "psnr": None, "path": None}]
    json.loads(json.dumps(rows, allow_nan=False))
