"""What every stage flow shares: its command line, task runner, per-clip tasks with retries,
one-line errors, and how finished work is skipped.

Skipping finished work: one mechanism, the files
------------------------------------------------
- A whole stage: DVC. It runs a stage only when its command, dependencies or parameters
  changed, and restores the outputs of settings it has run before from its run-cache (no
  output is `persist`, which would turn that cache off).
- An interrupted stage: `stage_output` builds the output in ``<output>.partial-<key>``, where
  the key digests the settings, the library code and the input files, and renames it into
  place when every unit is done. Each unit (a clip, an LMDB) is written atomically, so the
  library's `clip_is_done` checks tell what is left; a re-run with the same key finishes
  only that, and a partial folder of another key is deleted, never resumed.

Tasks cache nothing in Prefect. Retries are for transient failures only: an ``OSError`` (disk,
network file system, a pipe to ffmpeg) is retried; an FTVSRError is bad input and fails at once
with its one line.

In the Prefect UI
-----------------
- Flow runs are named after the DVC stage (`stage_flow_run_name`): ``compress@25``,
  ``evaluate@carphone-raw``, with `` [exp NAME]`` under ``dvc exp run``.
- The library's log records (``ftvsr.*``) join the logs of the flow or task run that emits them
  (`send_library_logs_to_prefect`, done on import).
- Results are artifacts: `publish_table`, `publish_markdown`, `publish_link`.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import hashlib
import importlib
import inspect
import json
import logging
import math
import os
import re
import shutil
import sys
from collections.abc import Callable, Iterable, Iterator, Mapping
from pathlib import Path
from types import ModuleType
from typing import Annotated, Any, Literal, ParamSpec, TypeVar, get_args
from uuid import UUID

import httpx
from prefect import Task, task
from prefect.artifacts import create_link_artifact, create_markdown_artifact, create_table_artifact
from prefect.cache_policies import NO_CACHE
from prefect.context import FlowRunContext, TaskRunContext
from prefect.exceptions import ParameterTypeError
from prefect.futures import as_completed
from prefect.logging.handlers import APILogHandler
from prefect.task_runners import ProcessPoolTaskRunner, TaskRunner, ThreadPoolTaskRunner
from pydantic import Field

from ftvsr.errors import FTVSRError
from ftvsr.params import PARAMS_FILE

PARTIAL = ".partial-"  # <output>.partial-<key>: an output being built (git- and dvc-ignored)

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


# --------------------------------------------------------------------------- the Prefect UI

LIBRARY_LOGGER = "ftvsr"
DVC_STAGE_ENV = "DVC_STAGE"  # set by DVC for every stage command it runs: ``compress@25``
DVC_EXP_NAME_ENV = "DVC_EXP_NAME"  # set by ``dvc exp run`` (its -n, else a name DVC draws)

log = logging.getLogger(__name__)


def in_a_run() -> bool:
    """True inside a flow or task run (the API files logs and artifacts under their run)."""
    return FlowRunContext.get() is not None or TaskRunContext.get() is not None


class _InsideARun(logging.Filter):
    """The library also runs outside Prefect (the `ftvsr` CLI, tests): no run, nothing to send."""

    def filter(self, record: logging.LogRecord) -> bool:
        return in_a_run()


def send_library_logs_to_prefect() -> None:
    """Send the library's log records (``ftvsr.*``) to the Prefect API, into the logs of the flow or
    task run that emits them, at Prefect's level (``PREFECT_LOGGING_LEVEL``, INFO by default).

    What ``PREFECT_LOGGING_EXTRA_LOGGERS=ftvsr`` would do, had it been set before Prefect was
    imported, and more: that setting alone passes only warnings, since the ``ftvsr`` logger
    inherits the root logger's WARNING. Idempotent; a level set on ``ftvsr`` is kept.
    """
    library = logging.getLogger(LIBRARY_LOGGER)
    if not any(isinstance(handler, APILogHandler) for handler in library.handlers):
        handler = APILogHandler()
        handler.addFilter(_InsideARun())
        library.addHandler(handler)
    if library.level == logging.NOTSET:
        library.setLevel(logging.getLogger("prefect.extra").getEffectiveLevel())


send_library_logs_to_prefect()


def stage_run_name(stage: str) -> str:
    """A flow run's name: the DVC stage running it (``DVC_STAGE``), else `stage`, the name that
    dvc.yaml gives it (``compress@25``); `` [exp NAME]`` appended under ``dvc exp run``."""
    name = os.environ.get(DVC_STAGE_ENV) or stage
    experiment = os.environ.get(DVC_EXP_NAME_ENV)
    return f"{name} [exp {experiment}]" if experiment else name


def stage_flow_run_name(template: str) -> Callable[[], str]:
    """``@flow(flow_run_name=...)``: `stage_run_name` of `template` formatted with the run's parameters.

    ``stage_flow_run_name("compress@{crf}")`` names a run ``compress@25``; evaluated when the run
    starts, so a subflow of `ftvsr-pipeline` and a run from `ftvsr serve` get the same names.
    """

    def name() -> str:
        context = FlowRunContext.get()
        return stage_run_name(template.format(**((context and context.parameters) or {})))

    return name


_NOT_IN_KEY = re.compile(r"[^a-z0-9]+")


def artifact_key(*parts: object) -> str:
    """A valid artifact key (lowercase letters, digits, dashes) made of `parts`:
    ``artifact_key("evaluate", "carphone", 35)`` is ``"evaluate-carphone-35"``. Artifacts of one
    key are one series in the UI's Artifacts page, its latest first."""
    words = (_NOT_IN_KEY.sub("-", str(part).lower()).strip("-") for part in parts)
    key = "-".join(word for word in words if word)
    if not key:
        raise ValueError(f"no artifact key can be made of {parts!r}")
    return key


def _cell(value: Any) -> Any:
    """A table cell as JSON the UI can read: numpy scalars as numbers, paths as text, NaN empty, inf as text."""
    if hasattr(value, "item") and callable(value.item) and getattr(value, "ndim", None) == 0:
        value = value.item()  # numpy / torch scalars
    if isinstance(value, float):
        return None if math.isnan(value) else value if math.isfinite(value) else str(value)
    if value is None or isinstance(value, (str, int, bool)):
        return value
    return str(value)


def _rows(table: Any) -> list[dict[str, Any]]:
    """A pandas DataFrame, rows (mappings) or columns (a mapping of lists) as rows of plain cells."""
    if hasattr(table, "to_dict") and hasattr(table, "columns"):  # a DataFrame, without importing pandas
        table = table.to_dict(orient="records")
    elif isinstance(table, Mapping):
        columns = {str(name): list(values) for name, values in table.items()}
        table = [dict(zip(columns, row, strict=True)) for row in zip(*columns.values(), strict=True)]
    return [{str(name): _cell(value) for name, value in row.items()} for row in table]


def _publish(kind: str, key: str, create: Callable[..., Any], **arguments: Any) -> UUID | None:
    """`create` the artifact inside a run (none outside one); an unreachable API is a warning, not a failure."""
    if not in_a_run():
        return None
    try:
        return create(key=artifact_key(key), **arguments)
    except httpx.HTTPError as err:  # the results are on disk; the stage must not fail for its UI copy
        log.warning("could not publish the %s artifact %r: %s", kind, key, err)
        return None


def publish_table(key: str, table: Any, description: str | None = None) -> UUID | None:
    """Show `table` (a DataFrame, rows as mappings, or a mapping of columns) as a table artifact of
    the current run; its id, or None outside a run. `key` is made valid by `artifact_key`."""
    return _publish("table", key, create_table_artifact, table=_rows(table), description=description)


def publish_markdown(key: str, markdown: str, description: str | None = None) -> UUID | None:
    """Show `markdown` (e.g. a report) as a markdown artifact of the current run; its id, or None outside a run."""
    return _publish("markdown", key, create_markdown_artifact, markdown=markdown, description=description)


def publish_link(key: str, url: str, text: str | None = None, description: str | None = None) -> UUID | None:
    """Show a link to `url` (e.g. the MLflow run) as a link artifact of the current run; its id, or None
    outside a run."""
    return _publish("link", key, create_link_artifact, link=url, link_text=text, description=description)


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


def file_manifest(path: str | os.PathLike) -> list[tuple[str, int]] | None:
    """``[(relative name, size), ...]`` of every file under `path` (or of the file); None if missing."""
    path = Path(path)
    if path.is_file():
        return [(path.name, path.stat().st_size)]
    if not path.is_dir():
        return None
    return [
        (file.relative_to(path).as_posix(), file.stat().st_size) for file in sorted(path.rglob("*")) if file.is_file()
    ]


def stage_key(settings: Any, modules: Iterable[ModuleType], inputs: Iterable[Path] = ()) -> str:
    """A digest of the settings, the library modules' source and the input files (names and sizes).

    Sizes, not modification times: DVC re-links its cached files on checkout, which must not
    start a stage afresh; a re-made input of another size does.
    """
    digest = hashlib.sha256(json.dumps(settings, sort_keys=True, default=str).encode())
    for module in modules:
        digest.update(code_digest(module.__name__).encode())
    for path in inputs:
        digest.update(json.dumps(file_manifest(path)).encode())
    return digest.hexdigest()[:16]


@contextlib.contextmanager
def stage_output(dst: Path, key: str) -> Iterator[Path]:
    """Build the output folder `dst` in ``<dst>.partial-<key>`` (yielded); rename it to `dst` at the end.

    The partial folder of an interrupted run with the same key is resumed; those of other keys
    are deleted. On an error the partial folder stays, for the re-run to finish.
    """
    partial = dst.with_name(f"{dst.name}{PARTIAL}{key}")
    if dst.parent.is_dir():
        for stale in dst.parent.glob(f"{dst.name}{PARTIAL}*"):
            if stale != partial:
                logging.getLogger("ftvsr").info("%s was begun with other settings: deleting it", stale)
                shutil.rmtree(stale)
    partial.mkdir(parents=True, exist_ok=True)
    yield partial
    if dst.is_dir():  # run outside DVC, which would have deleted it
        shutil.rmtree(dst)
    elif dst.exists():
        dst.unlink()
    partial.rename(dst)


# --------------------------------------------------------------------------- tasks


def is_transient(task: Task, task_run: Any, state: Any) -> bool:
    """Retry condition: an OSError (disk, network file system, ffmpeg's pipe) may pass; bad input will not."""
    error = state.data if isinstance(state.data, BaseException) else state.result(raise_on_failure=False)
    return isinstance(error, OSError)


def stage_task(run_name: str) -> Callable[[Callable[_P, _R]], Task[_P, _R]]:
    """`@task` for a stage's unit of work (a clip, an LMDB, a training, an evaluation): named runs, retries."""
    return task(
        task_run_name=run_name,
        retries=RETRIES,
        retry_delay_seconds=RETRY_DELAYS_S,
        retry_condition_fn=is_transient,
        cache_policy=NO_CACHE,
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


def run_tasks(runner: TaskRunner, work: Task, jobs: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
    """Run ``work(**jobs[name])`` for every job on `runner`; ``{name: result}`` in the order of `jobs`.

    The first job to fail (after its retries, for a transient error) cancels the jobs not yet
    started and raises FTVSRError naming it; finished jobs stay written.
    """
    results: dict[str, Any] = {}
    with runner:
        futures = {}
        for name, arguments in jobs.items():
            future = runner.submit(work, dict(arguments))
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
