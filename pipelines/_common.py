"""What every stage flow shares: its command line, loading params, one-line errors, and
outputs that are resumed only when made with the same settings and code."""
from __future__ import annotations

import argparse
import hashlib
import inspect
import json
import logging
import shutil
import sys
from collections.abc import Callable, Iterable
from pathlib import Path
from types import ModuleType
from typing import Any

from ftvsr.errors import FTVSRError
from ftvsr.io.atomic import write_text_atomic
from ftvsr.params import PARAMS_FILE

STAGE_FILE = ".stage.json"


class _NoTracebackForUserErrors(logging.Filter):
    """Prefect logs a failed run's traceback; a user-fixable error needs only its message."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.exc_info and isinstance(record.exc_info[1], FTVSRError):
            record.exc_info = record.exc_text = None
        return True


for _name in ("prefect.flow_runs", "prefect.task_runs"):
    logging.getLogger(_name).addFilter(_NoTracebackForUserErrors())


def stage_parser(description: str) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--params", type=Path, default=PARAMS_FILE, help="params file (default: params.yaml)")
    return parser


def run_stage(run: Callable[[], Any]) -> None:
    """Run a stage's flow; a user-fixable error becomes one line on stderr and exit code 1."""
    try:
        run()
    except FTVSRError as err:
        print(f"error: {err}", file=sys.stderr)
        sys.exit(1)
    except KeyboardInterrupt:
        print("interrupted: re-run the stage to finish where it stopped", file=sys.stderr)
        sys.exit(130)


def stage_key(settings: Any, modules: Iterable[ModuleType]) -> str:
    """A digest of the settings and the source of the library modules that make an output."""
    digest = hashlib.sha256(json.dumps(settings, sort_keys=True, default=str).encode())
    for module in modules:
        digest.update(inspect.getsource(module).encode())
    return digest.hexdigest()[:16]


def prepare_output(dst: Path, key: str) -> None:
    """Keep `dst` for resuming only if it was made with the same key; else start it afresh.

    DVC keeps these outputs between runs (`persist`), so an interrupted stage finishes
    where it stopped; a change of settings or code must not resume stale work.
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
    write_text_atomic(marker, json.dumps({"key": key}) + "\n")
