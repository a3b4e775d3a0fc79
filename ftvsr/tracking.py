"""MLflow: where runs go, how they are named and tagged, and what identifies their code and data.

Conventions (one experiment per profile, `mlflow.experiment` in params.yaml):

- the training run is named `train-<profile>` (or what the caller passes) and tagged
  `stage=train`; every setting of the profile is logged as a flattened param
  (`model.mid_channels`, `train.optimizer.lr`, ...);
- every run is tagged with the code and data it used: `git_commit` (also as MLflow's own
  `mlflow.source.git.commit`), `git_dirty`, and `dvc_data_version`;
- the training stage writes `train_run.json` (`TRAIN_RUN_FILE`) beside the model with the run id,
  so that the evaluation stage can attach its runs as children (`start_child_run`), one per
  test set and compression level, named `eval-<dataset>-<level>`.

Nothing here is needed to train or evaluate: without MLflow settings the library runs untracked.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import yaml

from ftvsr.errors import FTVSRError
from ftvsr.io.atomic import write_text_atomic
from ftvsr.params import MlflowSettings

TRAIN_RUN_FILE = "train_run.json"
STAGE_TAG = "stage"
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


def configure(settings: MlflowSettings) -> str:
    """Point MLflow at `settings.tracking_uri` and make sure the experiment exists; return its id.

    Relative locations (`sqlite:///mlflow.db`, `mlartifacts`) are relative to the current
    directory and are made absolute here, so that later changes of directory do not move them.
    A new experiment gets `settings.artifact_location`; an existing one keeps its own (MLflow
    cannot move it); a deleted one is restored.
    """
    import mlflow
    from mlflow.tracking import MlflowClient

    uri = resolve_tracking_uri(settings.tracking_uri)
    if uri.startswith("sqlite:///"):
        Path(uri[len("sqlite:///") :]).parent.mkdir(parents=True, exist_ok=True)
    mlflow.set_tracking_uri(uri)
    try:
        client = MlflowClient(tracking_uri=uri)
        experiment = client.get_experiment_by_name(settings.experiment)
        if experiment is None:
            return client.create_experiment(
                settings.experiment, artifact_location=resolve_artifact_location(settings.artifact_location)
            )
        if experiment.lifecycle_stage == "deleted":
            client.restore_experiment(experiment.experiment_id)
        return experiment.experiment_id
    except Exception as err:  # the store's own errors: MlflowException, SQLAlchemy's, OSError
        message = getattr(err, "message", None) or str(err).splitlines()[0]
        raise FTVSRError(
            f"MLflow tracking store {uri}: cannot open experiment "
            f"{settings.experiment!r} ({type(err).__name__}: {message})"
        ) from err


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
    tags.update({k: str(v) for k, v in (extra or {}).items()})
    return tags


def start_child_run(
    parent_run_id: str, run_name: str, experiment_id: str | None = None, tags: Mapping[str, Any] | None = None
):
    """Start a run shown under `parent_run_id` in the MLflow UI (the parent may be finished).

    Returns MLflow's ActiveRun (a context manager), as `mlflow.start_run` does.
    """
    import mlflow

    return mlflow.start_run(
        run_name=run_name,
        experiment_id=experiment_id,
        tags={**{k: str(v) for k, v in (tags or {}).items()}, PARENT_RUN_TAG: parent_run_id},
    )


def write_train_run(path: str | os.PathLike, info: Mapping[str, Any]) -> Path:
    """Write the training run's description (`run_id`, `experiment_id`, `tracking_uri`, ...) as JSON."""
    write_text_atomic(path, json.dumps(dict(info), indent=2, sort_keys=True) + "\n")
    return Path(path)


def read_train_run(path: str | os.PathLike) -> dict[str, Any]:
    """Read `train_run.json`; FTVSRError if it is missing or not a JSON object."""
    path = Path(path)
    try:
        info = json.loads(path.read_text())
    except FileNotFoundError:
        raise FTVSRError(f"training run file not found: {path} (run the train stage first)") from None
    except (OSError, json.JSONDecodeError) as err:
        raise FTVSRError(f"{path}: not a readable training run file ({err})") from None
    if not isinstance(info, dict):
        raise FTVSRError(f"{path}: expected a JSON object with the training run's id")
    return info
