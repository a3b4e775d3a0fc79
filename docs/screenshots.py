"""Screenshots for the docs, from the project's own runs: MLflow's compare view of two
experiments' training runs, and the Prefect UI of the pipeline's flow runs.

    python -m pipelines.prefect_server dvc repro        # a pipeline run (Prefect keeps it in .prefect/)
    # ... the README's CRF ablation recipe (experiments raw-only and crf25-only) ...
    python docs/screenshots.py --experiments raw-only crf25-only --out docs/images

It starts `mlflow ui` on the project's store and `prefect server start` on its `.prefect/`
database, each on a free local port, takes the pages with headless Chromium
(`render_plots.screenshot`), and stops both.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import httpx
from render_plots import screenshot

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from ftvsr import tracking  # noqa: E402
from ftvsr.params import load_params  # noqa: E402
from pipelines.prefect_server import _free_port, prefect_server  # noqa: E402


@contextlib.contextmanager
def mlflow_ui(store_uri: str, timeout_s: float = 120) -> Iterator[str]:
    """`mlflow ui` on a free port for `store_uri`; yields its base URL once it answers."""
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    command = [sys.executable, "-m", "mlflow", "ui", "--backend-store-uri", store_uri, "--port", str(port)]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        deadline = time.monotonic() + timeout_s
        while True:
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{url}/health", timeout=2).status_code == 200:
                    break
            if process.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"mlflow ui did not start for {store_uri}")
            time.sleep(0.5)
        yield url
    finally:
        process.terminate()
        process.wait(timeout=20)


def compare_view(base: str, experiments: list[str], png: Path, chromium: str) -> Path:
    """MLflow's compare view of the training runs of the DVC experiments `experiments`."""
    settings = load_params(ROOT / "params.yaml").mlflow
    client, experiment_id = tracking.client_for(settings)
    ids = []
    for name in experiments:
        run = tracking.find_run(client, experiment_id, {tracking.STAGE_TAG: "train", tracking.DVC_EXPERIMENT_TAG: name})
        if run is None:
            raise SystemExit(f"no training run of DVC experiment {name!r} in {tracking.tracking_uri(settings)}")
        ids.append(run.info.run_id)
    url = f"{base}/#/compare-runs?runs={quote(json.dumps(ids))}&experiments={quote(json.dumps([experiment_id]))}"
    return screenshot(url, png, chromium, "1500,2200", wait_ms=20000)


def prefect_views(api: str, out: Path, chromium: str) -> list[Path]:
    """The Prefect UI: the list of flow runs, the newest compress run with the library's log
    lines, and the artifacts (the evaluations' tables, the report, the link to MLflow)."""
    base = api.removesuffix("/api")
    runs = httpx.post(f"{api}/flow_runs/filter", json={"sort": "START_TIME_DESC", "limit": 200}, timeout=30).json()
    compress = next((run for run in runs if run["name"].startswith("compress")), None)
    if compress is None:
        raise SystemExit("no compress flow run in the Prefect database: run the pipeline first")
    pages = {
        "prefect_runs.png": f"{base}/runs",
        "prefect_logs.png": f"{base}/runs/flow-run/{compress['id']}",
        "prefect_artifacts.png": f"{base}/artifacts",
    }
    return [screenshot(url, out / name, chromium, "1500,1100", wait_ms=60000) for name, url in pages.items()]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--experiments", nargs=2, required=True, metavar="NAME", help="two DVC experiments")
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "images")
    parser.add_argument("--chromium", default="chromium")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    settings = load_params(ROOT / "params.yaml").mlflow
    with mlflow_ui(tracking.tracking_uri(settings)) as base:
        print(compare_view(base, args.experiments, args.out / "mlflow_compare.png", args.chromium))
    with prefect_server(ROOT / ".prefect") as api:
        for shot in prefect_views(api, args.out, args.chromium):
            print(shot)


if __name__ == "__main__":
    main()
