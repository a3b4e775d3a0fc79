"""MLflow: where runs go, how they are named, tagged and linked, and what they record.

Where (`configure`): `MLFLOW_TRACKING_URI` when set, else `mlflow.tracking_uri` of params.yaml
(default `sqlite:///mlflow.db`), relative to the project's root, also for `dvc exp run --temp`
and queued experiments; one experiment per profile (`mlflow.experiment`).

What (one training run per model, its evaluations nested under it):

- the training run `train-<profile>` (tag `stage=train`) has every setting of the profile as a
  flattened param (`model.mid_channels`, `train.optimizer.lr`, ...), the loss and learning-rate
  curves, the model as an MLflow Model registered as `ftvsr-<profile>` (`log_model`), the tag
  `model_sha256` of the model file, and, after evaluation, the means of every evaluated dataset
  and level as metrics `<dataset>.<level>.<metric>` and the report's files;
- an evaluation run `eval-<dataset>-<level>` (tag `stage=evaluate`) per dataset and level,
  nested under the training run of the model it scored (`log_evaluation`);
- every run is tagged with the code and data it used: `git_commit` (also as MLflow's own
  `mlflow.source.git.commit`), `git_dirty`, `dvc_data_version`, and under `dvc exp run` the
  experiment's name and baseline commit (`dvc_experiment`, `dvc_baseline`).

Running a stage again never adds a run: a training is found again by its identity (settings,
data, processes; tag `run_identity`), an evaluation by its model, dataset, level and settings.
Nothing here is needed to train or evaluate: without MLflow settings the library runs untracked.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import math
import os
import re
import sqlite3
import subprocess
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

import yaml

from ftvsr.errors import FTVSRError
from ftvsr.params import MlflowSettings

TRACKING_URI_ENV = "MLFLOW_TRACKING_URI"
DVC_ROOT_ENV = "DVC_ROOT"  # set by DVC for every stage: the workspace's root, also for temporary runs
STAGE_TAG = "stage"
MODEL_SHA_TAG = "model_sha256"  # the training run that wrote a model file is found by this tag
RUN_IDENTITY_TAG = "run_identity"  # a training's identity (settings, data, processes): one run per identity
EVAL_KEY_TAG = "eval_key"  # an evaluation's identity: one run per model, dataset, level and settings
DVC_EXPERIMENT_TAG = "dvc_experiment"
DVC_BASELINE_TAG = "dvc_baseline"
PARENT_RUN_TAG = "mlflow.parentRunId"  # the tag the MLflow UI nests runs by
_MANIFEST_SMALL_FILE = 64 * 1024  # files up to this size are hashed by content, larger ones by size


# ---------------------------------------------------------------- where runs go


def resolve_tracking_uri(uri: str, base: str | os.PathLike | None = None) -> str:
    """Make a relative local tracking URI absolute against `base` (default: the current directory).

    `sqlite:///mlflow.db` -> `sqlite:////abs/dir/mlflow.db`; a plain path or `file:` URI -> an
    absolute `file://` URI; anything else (http, an absolute sqlite path) is returned unchanged.
    """
    base = Path(base) if base is not None else Path.cwd()
    if uri.startswith("sqlite:///"):
        db = uri[len("sqlite:///") :]
        if db.startswith("/") or db in ("", ":memory:"):
            return uri
        return "sqlite:///" + str((base / db).resolve())
    if uri.startswith("file:"):
        path = uri[len("file:") :]
        if path.startswith("//"):
            return uri
        return (base / path).resolve().as_uri()
    if "://" not in uri:
        return (base / uri).resolve().as_uri()
    return uri


def resolve_artifact_location(location: str, base: str | os.PathLike | None = None) -> str:
    """A relative artifact folder -> an absolute `file://` URI (against `base`, default cwd)."""
    if location.startswith("file:"):
        return resolve_tracking_uri(location, base)
    if "://" in location:
        return location
    base = Path(base) if base is not None else Path.cwd()
    return (base / location).resolve().as_uri()


def project_root() -> Path:
    """The folder that relative MLflow locations are relative to.

    Under DVC, its root of the user's workspace (`DVC_ROOT`): `dvc exp run --temp` and queued
    experiments run in a temporary copy that DVC deletes afterwards, and DVC points `DVC_ROOT` at
    the workspace they came from, so their runs land in the user's store. Otherwise the current
    directory.
    """
    return Path(os.environ.get(DVC_ROOT_ENV) or Path.cwd())


def tracking_uri(settings: MlflowSettings) -> str:
    """Where runs go: `MLFLOW_TRACKING_URI` when set, else `settings.tracking_uri`; a relative
    local store is made absolute against `project_root()`."""
    return resolve_tracking_uri(os.environ.get(TRACKING_URI_ENV) or settings.tracking_uri, project_root())


def configure(settings: MlflowSettings) -> str:
    """Point MLflow at `tracking_uri(settings)` and make sure the experiment exists; return its id.

    A new experiment gets `settings.artifact_location` (relative to `project_root()`); an
    existing one keeps its own, except that a local store whose artifact folder no longer exists
    where it was recorded (the project folder was moved or renamed) is pointed at the folder
    beside it again (`relocate_artifacts`). A deleted experiment is restored.
    """
    import mlflow

    uri = tracking_uri(settings)
    if uri.startswith("sqlite:///"):
        Path(uri[len("sqlite:///") :]).parent.mkdir(parents=True, exist_ok=True)
    users_uri = os.environ.get(TRACKING_URI_ENV)
    mlflow.set_tracking_uri(uri)
    # MLflow also exports the URI to the environment; put the user's choice back, so that it
    # alone decides where a later `configure` (of other settings) goes.
    os.environ.pop(TRACKING_URI_ENV, None) if users_uri is None else os.environ.update({TRACKING_URI_ENV: users_uri})
    try:
        client = mlflow.MlflowClient(tracking_uri=uri)
        wanted = resolve_artifact_location(settings.artifact_location, project_root())
        experiment = client.get_experiment_by_name(settings.experiment)
        if experiment is None:
            return client.create_experiment(settings.experiment, artifact_location=wanted)
        if experiment.lifecycle_stage == "deleted":
            client.restore_experiment(experiment.experiment_id)
        recorded = experiment.artifact_location
        if recorded != wanted and uri.startswith("sqlite:///") and _missing_local_folder(recorded):
            relocate_artifacts(Path(uri[len("sqlite:///") :]), recorded, wanted)
        return experiment.experiment_id
    except Exception as err:  # the store's own errors: MlflowException, SQLAlchemy's, OSError
        message = getattr(err, "message", None) or str(err).splitlines()[0]
        raise FTVSRError(
            f"MLflow tracking store {uri}: cannot open experiment "
            f"{settings.experiment!r} ({type(err).__name__}: {message})"
        ) from err


def client_for(settings: MlflowSettings) -> tuple[Any, str]:
    """(an MlflowClient of the configured store, the experiment's id)."""
    from mlflow import MlflowClient

    experiment_id = configure(settings)
    return MlflowClient(tracking_uri=tracking_uri(settings)), experiment_id


def _local_path(location: str) -> Path | None:
    if location.startswith("file://"):
        return Path(unquote(urlparse(location).path))
    return Path(location) if "://" not in location else None


def _missing_local_folder(location: str) -> bool:
    path = _local_path(location)
    return path is not None and not path.exists()


def relocate_artifacts(db: Path, old: str, new: str) -> int:
    """Rewrite the artifact locations recorded in the SQLite store `db` from `old` to `new`.

    MLflow records absolute artifact locations (experiments, runs, logged models, model
    versions); a moved project folder leaves them pointing at its old place. Every text value
    that starts with the old folder is rewritten (the `file://` form and the plain path alike).
    Returns the number of values changed.
    """
    old_path, new_path = _local_path(old), _local_path(new)
    if old_path is None or new_path is None:
        return 0
    pattern = re.compile(re.escape(str(old_path)) + r"(?=/|$)")
    changed = 0
    with contextlib.closing(sqlite3.connect(db)) as connection, connection:
        tables = [row[0] for row in connection.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
        for table in tables:
            columns = [row[1] for row in connection.execute(f'PRAGMA table_info("{table}")')]
            for column in columns:
                rows = connection.execute(
                    f'SELECT rowid, "{column}" FROM "{table}" WHERE instr("{column}", ?) > 0', (str(old_path),)
                ).fetchall()
                for rowid, value in rows:
                    if isinstance(value, str) and (fixed := pattern.sub(str(new_path), value)) != value:
                        connection.execute(f'UPDATE "{table}" SET "{column}" = ? WHERE rowid = ?', (fixed, rowid))
                        changed += 1
    return changed


def system_metrics_available() -> bool:
    """True if MLflow can log system metrics (CPU, memory, GPU): it needs psutil."""
    try:
        import psutil  # noqa: F401
    except ImportError:
        return False
    return True


# ---------------------------------------------------------------- what the run used


def _git(args: list[str], cwd: Path) -> str | None:
    try:
        done = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, timeout=10, check=False)
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout.strip() if done.returncode == 0 else None


def git_commit(path: str | os.PathLike | None = None) -> str | None:
    """The commit checked out in the repository holding `path` (default: cwd), or None."""
    commit = _git(["rev-parse", "HEAD"], Path(path) if path is not None else Path.cwd())
    return commit or None


def git_dirty(path: str | os.PathLike | None = None) -> bool | None:
    """True if tracked files differ from the commit (untracked files are ignored); None outside git."""
    status = _git(["status", "--porcelain", "--untracked-files=no"], Path(path) if path is not None else Path.cwd())
    return None if status is None else bool(status)


def _find_upwards(start: Path, name: str) -> Path | None:
    for folder in (start, *start.parents):
        if (folder / name).is_file():
            return folder / name
    return None


def _dvc_outs(lock_file: Path) -> dict[Path, str]:
    """{absolute output path: md5} of every stage output recorded in a dvc.lock."""
    try:
        lock = yaml.safe_load(lock_file.read_text()) or {}
    except (OSError, yaml.YAMLError):
        return {}
    outs: dict[Path, str] = {}
    stages = lock.get("stages", {}) if isinstance(lock, dict) else {}
    for stage in stages.values() if isinstance(stages, dict) else ():
        for out in (stage or {}).get("outs", []) or []:
            if isinstance(out, dict) and out.get("path") and (out.get("md5") or out.get("etag")):
                outs[(lock_file.parent / out["path"]).resolve()] = str(out.get("md5") or out.get("etag"))
    return outs


def _dvc_fingerprint(path: Path, outs: Mapping[Path, str]) -> str | None:
    """md5s of the dvc.lock outputs that are `path`, hold it, or lie inside it; None if none do."""
    lines = sorted(
        f"{out}:{md5}" for out, md5 in outs.items() if out == path or out in path.parents or path in out.parents
    )
    return "\n".join(lines) if lines else None


def _manifest_fingerprint(path: Path) -> str:
    """Names and sizes of the files under `path` (small files also by content): cheap, not a full hash."""
    files = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file())
    digest = hashlib.sha256()
    for file in files:
        size = file.stat().st_size
        digest.update(f"{file.relative_to(path) if file != path else file.name}:{size}\n".encode())
        if size <= _MANIFEST_SMALL_FILE:
            digest.update(hashlib.sha256(file.read_bytes()).digest())
    return digest.hexdigest()


def dvc_data_version(paths: Iterable[str | os.PathLike]) -> str | None:
    """A short id of the data at `paths`: `dvc-<hash>` of their md5s in dvc.lock, if DVC recorded
    every one of them, else `files-<hash>` of a cheap manifest (names, sizes, small files' content).

    The dvc.lock is looked for upwards from each path. Returns None if no path exists.
    """
    resolved = [Path(p).resolve() for p in paths]
    resolved = [p for p in resolved if p.exists()]
    if not resolved:
        return None
    parts, all_dvc = [], True
    for path in resolved:
        lock_file = _find_upwards(path if path.is_dir() else path.parent, "dvc.lock")
        recorded = _dvc_fingerprint(path, _dvc_outs(lock_file)) if lock_file else None
        all_dvc &= recorded is not None
        parts.append(recorded or _manifest_fingerprint(path))
    digest = hashlib.sha256("\n--\n".join(parts).encode()).hexdigest()[:16]
    return f"{'dvc' if all_dvc else 'files'}-{digest}"


# ---------------------------------------------------------------- run conventions


def train_run_name(profile: str | None) -> str:
    return f"train-{profile}" if profile else "train"


def registered_model_name(profile: str | None) -> str:
    return f"ftvsr-{profile}" if profile else "ftvsr"


def eval_run_name(dataset: str, level: str | int) -> str:
    return f"eval-{dataset}-{level}"


def flatten(settings: Mapping[str, Any], prefix: str = "") -> dict[str, str]:
    """Nested settings -> {"a.b.c": "value"} as MLflow params (lists and None as text)."""
    flat: dict[str, str] = {}
    for key, value in settings.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            flat.update(flatten(value, prefix=f"{name}."))
        else:
            flat[name] = json.dumps(value) if isinstance(value, (list, tuple, type(None), bool)) else str(value)
    return flat


def run_tags(
    stage: str, data_paths: Iterable[str | os.PathLike] = (), extra: Mapping[str, Any] | None = None
) -> dict[str, str]:
    """The tags every run of `stage` carries: stage, code version and data version (and `extra`)."""
    tags = {STAGE_TAG: stage}
    commit = git_commit()
    if commit:
        tags["git_commit"] = commit
        tags["mlflow.source.git.commit"] = commit
    dirty = git_dirty()
    if dirty is not None:
        tags["git_dirty"] = str(dirty).lower()
    data_version = dvc_data_version(data_paths)
    if data_version:
        tags["dvc_data_version"] = data_version
    tags.update(experiment_tags())
    tags.update({k: str(v) for k, v in (extra or {}).items()})
    return tags


def experiment_tags() -> dict[str, str]:
    """The DVC experiment a stage runs in (`dvc exp run`, queued or not): its name and baseline commit."""
    tags = {}
    if os.environ.get("DVC_EXP_NAME"):
        tags[DVC_EXPERIMENT_TAG] = os.environ["DVC_EXP_NAME"]
    if os.environ.get("DVC_EXP_BASELINE_REV"):
        tags[DVC_BASELINE_TAG] = os.environ["DVC_EXP_BASELINE_REV"]
    return tags


def file_sha256(path: str | os.PathLike) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        for block in iter(lambda: file.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def find_run(client: Any, experiment_id: str, tags: Mapping[str, str]) -> Any | None:
    """The newest run of the experiment carrying all of `tags` (finished runs first), or None."""
    query = " and ".join(f"tags.{key} = '{value}'" for key, value in tags.items())
    runs = client.search_runs([experiment_id], filter_string=query, order_by=["attributes.start_time DESC"])
    finished = [run for run in runs if run.info.status == "FINISHED"]
    return (finished or list(runs) or [None])[0]


def find_training_run(client: Any, experiment_id: str, model_sha256: str) -> Any | None:
    """The training run that wrote the model whose file has this SHA-256, or None."""
    return find_run(client, experiment_id, {STAGE_TAG: "train", MODEL_SHA_TAG: model_sha256})


@dataclass(frozen=True)
class ModelRuns:
    """Where a model file's runs are: the store's client, the experiment, the file's SHA-256 and the
    training run that wrote it (None: no training run in the store did). Looked up once, used for
    every evaluation and the report of that model."""

    client: Any
    experiment_id: str
    model_sha256: str
    training: Any | None

    @property
    def training_id(self) -> str | None:
        return self.training.info.run_id if self.training is not None else None


def model_runs(settings: MlflowSettings, model_path: str | os.PathLike) -> ModelRuns:
    """`ModelRuns` of the model file at `model_path` in the configured store."""
    client, experiment_id = client_for(settings)
    sha = file_sha256(model_path)
    return ModelRuns(client, experiment_id, sha, find_training_run(client, experiment_id, sha))


def training_run_id(settings: MlflowSettings, model_path: str | os.PathLike) -> str | None:
    """The id of the training run that wrote the model file at `model_path`, or None."""
    return model_runs(settings, model_path).training_id


def _log_params(client: Any, run_id: str, params: Mapping[str, str]) -> None:
    from mlflow.entities import Param

    items = [Param(key, str(value)) for key, value in params.items()]
    for start in range(0, len(items), 100):  # MLflow takes at most 100 params a request
        client.log_batch(run_id, params=items[start : start + 100])


def _log_metrics(client: Any, run_id: str, metrics: Mapping[str, float], timestamp: int) -> None:
    """Log at step 0 with a fixed timestamp: logging the same values again adds nothing."""
    from mlflow.entities import Metric

    items = [Metric(key, value, timestamp, 0) for key, value in metrics.items() if math.isfinite(value)]
    for start in range(0, len(items), 1000):
        client.log_batch(run_id, metrics=items[start : start + 1000])


# ---------------------------------------------------------------- the model


def model_signature() -> Any:
    """The served model's interface: LR clips (n, t, 3, h, w) in [0, 1] -> (n, t, 3, 4h, 4w)."""
    import numpy as np
    from mlflow.models import ModelSignature
    from mlflow.types import Schema, TensorSpec

    clips = Schema([TensorSpec(np.dtype(np.float32), (-1, -1, 3, -1, -1), "clip")])
    return ModelSignature(inputs=clips, outputs=Schema([TensorSpec(np.dtype(np.float32), (-1, -1, 3, -1, -1))]))


def log_model(model: Any, *, registered_name: str, model_sha256: str) -> str | None:
    """Log `model` as an MLflow Model (`mlflow.pytorch`, with its signature and the `ftvsr`
    package as code) in the active run, and register it as a version of `registered_name`.

    The version is tagged with the model file's SHA-256; if the active run already registered a
    version with that hash (a re-run of a finished training), nothing is logged again. Returns
    the version, or None if it was there already.
    """
    import mlflow
    import torch

    active = mlflow.active_run()
    if active is None:
        raise FTVSRError("log_model: no active MLflow run to log the model in")
    run_id = active.info.run_id
    client = mlflow.MlflowClient()
    registered = client.search_model_versions(f"run_id = '{run_id}'")
    if any(version.tags.get(MODEL_SHA_TAG) == model_sha256 for version in registered):
        return None
    # MLflow warns that pickled models run code when loaded; the safe format, the weights-only
    # checkpoint file, is logged beside it (`checkpoint/`).
    quiet = logging.getLogger("mlflow.pytorch")
    level = quiet.level
    quiet.setLevel(logging.ERROR)
    try:
        info = mlflow.pytorch.log_model(
            model,
            name="model",
            signature=model_signature(),
            code_paths=[str(Path(__file__).resolve().parent)],  # the ftvsr package: loads where it is not installed
            pip_requirements=[f"torch=={torch.__version__.split('+')[0]}", "numpy"],
            serialization_format="pickle",  # the recurrent, data-dependent forward does not trace to pt2
        )
    finally:
        quiet.setLevel(level)
    version = mlflow.register_model(info.model_uri, registered_name, tags={MODEL_SHA_TAG: model_sha256})
    return str(version.version)


# ---------------------------------------------------------------- evaluations


def evaluation_metrics(summary: Mapping[str, Any]) -> dict[str, float]:
    """`ftvsr.results.level_summary` as flat metric names: `<method>_psnr`, `<method>_ssim`
    (bicubic, lanczos, ftvsr), `delta_psnr`, `delta_ssim` (FTVSR minus bicubic) and
    `delta_psnr_lanczos`, `delta_ssim_lanczos` (FTVSR minus Lanczos)."""
    metrics: dict[str, float] = {}
    for key, value in summary.items():
        if isinstance(value, Mapping):
            metrics.update({f"{key}_{name}": float(number) for name, number in value.items()})
        else:
            metrics[key] = float(value)
    return metrics


def log_evaluation(
    runs: ModelRuns,
    summary: Mapping[str, Any],
    *,
    dataset: str,
    level: str,
    protocol: str,
    evaluate_settings: Mapping[str, Any],
    artifacts: Iterable[str | os.PathLike] = (),
    tags: Mapping[str, str] | None = None,
) -> tuple[str, str | None]:
    """Record one evaluation (one dataset at one level) of the model of `runs` (`model_runs`).

    - An evaluation run `eval-<dataset>-<level>`, nested under the model's training run (found by
      the model file's SHA-256), with the means as metrics (`evaluation_metrics`), the dataset,
      level, protocol, evaluation settings and the training run's params, and `artifacts`.
    - On the training run, the same means as `<dataset>.<level>.<metric>`, so that selecting
      training runs in MLflow's compare view shows their settings beside the PSNR at each level.

    The run is keyed by the model, dataset, level and settings: evaluating again updates it,
    never adds a second one. A model that no training run in the store wrote (weights from
    elsewhere) gets an evaluation run of its own, at the top level. Returns (evaluation run id,
    training run id or None).
    """
    client, experiment_id, model_sha, training = runs.client, runs.experiment_id, runs.model_sha256, runs.training
    key_source = json.dumps([model_sha, dataset, level, protocol, dict(evaluate_settings)], sort_keys=True)
    key = hashlib.sha256(key_source.encode()).hexdigest()[:16]
    run_tags_ = {
        **(tags or {}),
        STAGE_TAG: "evaluate",
        EVAL_KEY_TAG: key,
        MODEL_SHA_TAG: model_sha,
        "dataset": dataset,
        "level": level,
        "protocol": protocol,
    }
    if training is not None:
        run_tags_[PARENT_RUN_TAG] = training.info.run_id
    existing = find_run(client, experiment_id, {EVAL_KEY_TAG: key})
    run = existing or client.create_run(experiment_id, run_name=eval_run_name(dataset, level), tags=run_tags_)
    run_id = run.info.run_id
    metrics = evaluation_metrics(summary)
    params = {"dataset": dataset, "level": level, "protocol": protocol, **flatten(evaluate_settings, "evaluate.")}
    if training is not None:
        params.update({k: v for k, v in training.data.params.items() if k.startswith(("model.", "train."))})
    if existing is None:
        _log_params(client, run_id, params)
    else:
        for name, value in run_tags_.items():
            client.set_tag(run_id, name, value)
    _log_metrics(client, run_id, metrics, run.info.start_time)
    for path in artifacts:
        client.log_artifact(run_id, str(path))
    client.set_terminated(run_id, "FINISHED")
    if training is None:
        return run_id, None
    summary_names = {f"{dataset}.{level}.{name}": value for name, value in metrics.items()}
    _log_metrics(client, training.info.run_id, summary_names, run.info.start_time)
    return run_id, training.info.run_id


def log_report(runs: ModelRuns, files: Iterable[Path]) -> str | None:
    """Attach the report's files (tables, plots, strips) to the model's training run, under
    `report/`. Returns the training run's id, or None if no training run in the store wrote
    the model. Logging again replaces the files."""
    if runs.training_id is None:
        return None
    for path in files:
        if path.is_dir():
            runs.client.log_artifacts(runs.training_id, str(path), artifact_path=f"report/{path.name}")
        elif path.is_file():
            runs.client.log_artifact(runs.training_id, str(path), artifact_path="report")
    return runs.training_id


def run_url(settings: MlflowSettings, run_id: str, experiment_id: str, ui: str = "http://127.0.0.1:5000") -> str:
    """The run's page in MLflow's UI: the tracking server's own, or `ui` (`mlflow ui`'s default
    address) for a local store."""
    uri = tracking_uri(settings)
    base = uri.rstrip("/") if uri.startswith(("http://", "https://")) else ui
    return f"{base}/#/experiments/{experiment_id}/runs/{run_id}"
