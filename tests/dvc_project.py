"""Temporary copies of the project for tests that run `dvc repro` for real."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
OUTPUT_FOLDERS = ("data/", "models/", "results/", "reports/", "checkpoints/")


def merge(base: dict, override: dict) -> dict:
    """`base` with `override` laid over it, nested mappings merged key by key."""
    out = dict(base)
    for key, value in override.items():
        out[key] = merge(base[key], value) if isinstance(value, dict) and isinstance(base.get(key), dict) else value
    return out


def project_copy(dst: Path, profile: str, override: dict) -> Path:
    """The project's tracked and unignored files (no outputs, no dvc.lock) in `dst`, a git repository
    whose params.yaml is ``profiles/<profile>.yaml`` with `override` laid over it."""
    files = subprocess.run(
        ["git", "ls-files", "-co", "--exclude-standard"], cwd=ROOT, check=True, capture_output=True, text=True
    ).stdout.split()
    for name in files:
        if name.startswith(OUTPUT_FOLDERS) or name == "dvc.lock" or not (ROOT / name).is_file():
            continue
        target = dst / name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / name, target)
    write_params(dst, merge(yaml.safe_load((ROOT / "profiles" / f"{profile}.yaml").read_text()), override))
    for command in (
        ["git", "init", "-q"],
        ["git", "add", "-A"],
        ["git", "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "copy"],
    ):
        subprocess.run(command, cwd=dst, check=True)
    return dst


def git(repo: Path, *args: str) -> str:
    """`git ARGS` in `repo` (with an author for commits); its output."""
    return subprocess.run(
        ["git", "-c", "user.name=t", "-c", "user.email=t@t", *args],
        cwd=repo,
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()


def read_params(project: Path) -> dict:
    return yaml.safe_load((project / "params.yaml").read_text())


def write_params(project: Path, params: dict) -> None:
    (project / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))


def dvc(project: Path, *args: str, api_url: str | None = None, env: dict | None = None) -> subprocess.CompletedProcess:
    """`dvc ARGS` in `project` with this interpreter's tools first on PATH (stages run `python -m ...`)."""
    environment = dict(
        os.environ,
        PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
        PREFECT_LOGGING_LEVEL="WARNING",
        PYTHONPATH=str(project),
        **(env or {}),
    )
    if api_url:
        environment["PREFECT_API_URL"] = api_url
    return subprocess.run(
        [sys.executable, "-m", "dvc", *args], cwd=project, env=environment, capture_output=True, text=True, timeout=900
    )
