"""What every stage flow shares: its command line, task runner, per-clip tasks with retries and
caching, one-line errors, and outputs that are resumed only when made with the same settings,
code and inputs.

Skipping finished work: the files on disk decide
------------------------------------------------
DVC may delete a stage's outputs (a stage that is not `persist`, `dvc checkout`, a user), so no
record kept elsewhere may stand in for a file. Three layers, each looking at the files:

1. The stage output: `prepare_output` keeps a persisted output for resuming only when it was
   made with the same settings, library code and input files (names and sizes); otherwise the
   stage starts it afresh.
2. The clip: each per-clip task first asks the library whether the clip is complete on disk
   (`ftvsr.data.degrade.clip_is_done`, ...) and returns at once if so; clips are written
   atomically, so a clip is either whole or absent.
3. Prefect's cache, on top, for the UI and to skip even that check: the key is the task's
   arguments (paths made absolute, settings by value), its source, the source of the library
   modules that do the work, and a manifest (names, sizes, mtimes) of the files it reads.
   The key deliberately leaves the output out: Prefect computes it *before* the task runs, so a
   key that saw "output missing" would be exactly the key the first run recorded, and a hit
   would skip work whose output DVC has since deleted. Instead `run_tasks` looks at each
   output before submitting: a task whose output is not complete runs with
   ``refresh_cache=True`` (whatever the cache holds; the record is overwritten). A cache hit
   therefore only ever happens for a clip whose output is complete on disk, made from the same
   arguments, code and input files as the run that recorded it.

Retries are for transient failures only: an ``OSError`` (disk, network file system, a pipe to
ffmpeg) is retried; an FTVSRError is bad input and fails at once with its one line.
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import hashlib
import importlib
import inspect
import json
import logging
import os
import shutil
import sys
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path, PurePath
from types import ModuleType
from typing import Annotated, Any, Literal, ParamSpec, TypeVar, get_args

from prefect import Task, task
from prefect.cache_policies import TASK_SOURCE, CachePolicy
from prefect.exceptions import ParameterTypeError
from prefect.futures import as_completed
from prefect.task_runners import ProcessPoolTaskRunner, TaskRunner, ThreadPoolTaskRunner
from pydantic import BaseModel, Field

from ftvsr.errors import FTVSRError
from ftvsr.io.atomic import write_text_atomic
from ftvsr.params import PARAMS_FILE

STAGE_FILE = ".stage.json"

TaskRunnerKind = Literal["threads", "processes", "dask"]
TASK_RUNNERS: tuple[str, ...] = get_args(TaskRunnerKind)
# A flow parameter: the UI and the server reject 0 or less before a run is created.
Workers = Annotated[int, Field(ge=1)]

_P = ParamSpec("_P")
_R = TypeVar("_R")

RETRIES = 2
RETRY_DELAYS_S: list[float] = [2, 10]


class _NoTracebackForUserErrors(logging.Filter):
    """Prefect logs a failed run's traceback; a user-fixable error needs only its message."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.exc_info and isinstance(record.exc_info[1], FTVSRError):
            record.exc_info = record.exc_text = None
        return True


for _name in ("prefect.flow_runs", "prefect.task_runs"):
    logging.getLogger(_name).addFilter(_NoTracebackForUserErrors())


# --------------------------------------------------------------------------- command line


def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be an integer >= 1, got {text!r}")
    return value


def stage_parser(description: str, task_runner: bool = False) -> argparse.ArgumentParser:
    """The options every stage takes; `task_runner` adds ``--task-runner`` and ``--workers`` (data stages)."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--params", type=Path, default=PARAMS_FILE, help="params file (default: params.yaml)")
    if task_runner:
        parser.add_argument(
            "--task-runner",
            choices=TASK_RUNNERS,
            default="threads",
            help="run the per-clip tasks on threads or processes here, or on a Dask cluster",
        )
        parser.add_argument(
            "--workers",
            type=positive_int,
            default=None,
            help="tasks at a time (default: data.workers of the params file)",
        )
    return parser


def run_stage(run: Callable[[], Any]) -> None:
    """Run a stage's flow; a user-fixable error becomes one line on stderr and exit code 1."""
    try:
        run()
    except FTVSRError as err:
        print(f"error: {err}", file=sys.stderr)
        sys.exit(1)
    except ParameterTypeError as err:  # Prefect validated the flow's parameters before running it
        print(f"error: invalid parameters: {' '.join(str(err).split())}", file=sys.stderr)
        sys.exit(1)
    except KeyboardInterrupt:
        print("interrupted: re-run the stage to finish where it stopped", file=sys.stderr)
        sys.exit(130)


# --------------------------------------------------------------------------- stage outputs


@functools.cache
def code_digest(module_name: str) -> str:
    """A digest of a library module's source; for a package, of every ``.py`` file in it."""
    module = importlib.import_module(module_name)
    digest = hashlib.sha256()
    if hasattr(module, "__path__"):
        for folder in module.__path__:
            for path in sorted(Path(folder).rglob("*.py")):
                digest.update(path.relative_to(folder).as_posix().encode() + b"\0" + path.read_bytes())
    else:
        digest.update(inspect.getsource(module).encode())
    return digest.hexdigest()


def file_manifest(path: str | os.PathLike, with_mtime: bool = True) -> list | None:
    """``[(relative name, size[, mtime_ns]), ...]`` of every file under `path` (or of the file); None if missing."""
    path = Path(path)

    def entry(file: Path, name: str) -> tuple:
        info = file.stat()
        return (name, info.st_size, info.st_mtime_ns) if with_mtime else (name, info.st_size)

    if path.is_file():
        return [entry(path, path.name)]
    if not path.is_dir():
        return None
    return [entry(file, file.relative_to(path).as_posix()) for file in sorted(path.rglob("*")) if file.is_file()]


def stage_key(settings: Any, modules: Iterable[ModuleType], inputs: Iterable[Path] = ()) -> str:
    """A digest of the settings, the library modules' source and the input files (names and sizes).

    Sizes, not modification times: DVC re-links its cached files on checkout, which must not
    start a stage afresh; a re-made input of another size does.
    """
    digest = hashlib.sha256(json.dumps(settings, sort_keys=True, default=str).encode())
    for module in modules:
        digest.update(code_digest(module.__name__).encode())
    for path in inputs:
        digest.update(json.dumps(file_manifest(path, with_mtime=False)).encode())
    return digest.hexdigest()[:16]


def prepare_output(dst: Path, key: str) -> None:
    """Keep `dst` for resuming only if it was made with the same key; else start it afresh.

    DVC keeps these outputs between runs (`persist`), so an interrupted stage finishes
    where it stopped; a change of settings, code or inputs must not resume stale work.
    """
    marker = dst / STAGE_FILE
    if dst.exists():
        try:
            same = json.loads(marker.read_text()).get("key") == key
        except (OSError, ValueError):
            same = False
        if not same:
            logging.getLogger("ftvsr").info("%s was made with other settings: starting it afresh", dst)
            shutil.rmtree(dst) if dst.is_dir() else dst.unlink()
    dst.mkdir(parents=True, exist_ok=True)
    text = json.dumps({"key": key}) + "\n"
    if not (marker.is_file() and marker.read_text() == text):  # unchanged: the files that read it keep their key
        write_text_atomic(marker, text)


# --------------------------------------------------------------------------- tasks


def _as_json(value: Any) -> Any:
    if isinstance(value, PurePath):
        return os.path.abspath(value)
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json")
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return dataclasses.asdict(value)
    raise TypeError(f"cannot key a task argument of type {type(value).__name__}")


def _content_digest(path: str | os.PathLike) -> str | None:
    try:
        return hashlib.sha256(Path(path).read_bytes()).hexdigest()
    except OSError:
        return None


@dataclasses.dataclass
class InputsCodeAndFiles(CachePolicy):
    """Cache key: the task's arguments, its source, its library `modules`' source, and the files it reads.

    `reads` names the path arguments whose files are the task's input (a manifest of names,
    sizes and mtimes); `contents` names small file arguments (a params file) that count by
    their bytes alone, wherever they are. The output is not in the key: see this module's docstring.
    """

    modules: tuple[str, ...] = ()
    reads: tuple[str, ...] = ()
    contents: tuple[str, ...] = ()

    def compute_key(
        self, task_ctx, inputs: dict[str, Any], flow_parameters: dict[str, Any], **kwargs: Any
    ) -> str | None:
        if task_ctx is None:
            return None
        parts = {
            "arguments": {name: value for name, value in inputs.items() if name not in self.contents},
            "task": TASK_SOURCE.compute_key(task_ctx, inputs, flow_parameters),
            "code": [code_digest(name) for name in self.modules],
            "reads": {name: file_manifest(inputs[name]) for name in self.reads},
            "contents": {name: _content_digest(inputs[name]) for name in self.contents},
        }
        return hashlib.sha256(json.dumps(parts, sort_keys=True, default=_as_json).encode()).hexdigest()


def is_transient(task: Task, task_run: Any, state: Any) -> bool:
    """Retry condition: an OSError (disk, network file system, ffmpeg's pipe) may pass; bad input will not."""
    error = state.data if isinstance(state.data, BaseException) else state.result(raise_on_failure=False)
    return isinstance(error, OSError)


def stage_task(
    run_name: str, modules: tuple[str, ...], reads: tuple[str, ...] = (), contents: tuple[str, ...] = ()
) -> Callable[[Callable[_P, _R]], Task[_P, _R]]:
    """`@task` for a stage's unit of work (a clip, an LMDB, a training, an evaluation): named runs, retries, caching."""
    return task(
        task_run_name=run_name,
        retries=RETRIES,
        retry_delay_seconds=RETRY_DELAYS_S,
        retry_condition_fn=is_transient,
        cache_policy=InputsCodeAndFiles(modules=modules, reads=reads, contents=contents),
    )


def make_task_runner(kind: str, workers: int) -> TaskRunner:
    """The task runner for a stage's per-clip tasks: threads or processes here, or a Dask cluster.

    ``dask`` needs the optional ``prefect-dask`` (``pip install -e '.[cluster]'``); it connects to
    the scheduler named by Dask's own setting (``DASK_SCHEDULER_ADDRESS``), else starts a local
    cluster of `workers` processes.
    """
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
        raise FTVSRError(f"workers must be an integer >= 1, got {workers!r}")
    if kind == "threads":
        return ThreadPoolTaskRunner(max_workers=workers)
    if kind == "processes":
        return ProcessPoolTaskRunner(max_workers=workers)
    if kind == "dask":
        try:
            import dask
            from prefect_dask import DaskTaskRunner
        except ImportError:
            raise FTVSRError("task runner 'dask' needs prefect-dask: pip install -e '.[cluster]'") from None
        address = dask.config.get("scheduler-address", None)
        if address:
            return DaskTaskRunner(address=address)
        return DaskTaskRunner(cluster_kwargs={"n_workers": workers, "threads_per_worker": 1})
    raise FTVSRError(f"unknown task runner {kind!r} (use one of {', '.join(TASK_RUNNERS)})")


def run_tasks(
    runner: TaskRunner,
    work: Task,
    jobs: Mapping[str, Mapping[str, Any]],
    done: Callable[[Mapping[str, Any]], bool],
) -> dict[str, Any]:
    """Run ``work(**jobs[name])`` for every job on `runner`; ``{name: result}`` in the order of `jobs`.

    `done(arguments)` says whether a job's output is already complete on disk; a job whose
    output is not runs with ``refresh_cache=True``, so a cache record never replaces a missing
    output. The first job to fail (after its retries, for a transient error) cancels the jobs
    not yet started and raises FTVSRError naming it; finished jobs stay written.
    """
    refreshing = work.with_options(refresh_cache=True)
    results: dict[str, Any] = {}
    with runner:
        futures = {}
        for name, arguments in jobs.items():
            future = runner.submit(work if done(arguments) else refreshing, dict(arguments))
            futures[future.task_run_id] = (name, future)
        for finished in as_completed([future for _, future in futures.values()]):
            name = futures[finished.task_run_id][0]
            try:
                results[name] = finished.result()
            except FTVSRError as err:
                raise FTVSRError(str(err) if name in str(err) else f"{name}: {err}") from None
            except OSError as err:
                raise FTVSRError(f"{name} failed after {RETRIES + 1} attempts: {type(err).__name__}: {err}") from err
    return {name: results[name] for name in jobs}
