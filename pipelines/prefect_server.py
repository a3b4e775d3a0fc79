"""Run a command, typically `dvc repro`, with one Prefect server for all of its stages.

Every DVC stage is a process of its own. Without `PREFECT_API_URL` each one starts and stops a
temporary Prefect server (5 to 20 s a stage, and the runs vanish with it). Instead,

    python -m pipelines.prefect_server dvc repro

starts `prefect server start` on a free local port (its database in `PREFECT_HOME`, by default
`.prefect/` in the project, so `prefect server start` shows the runs afterwards in the UI), runs
the command with `PREFECT_API_URL` pointing at it, and stops the server when the command ends.
With `PREFECT_API_URL` already set (a team's server) the command just runs against that.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from pathlib import Path

import httpx

from ftvsr.errors import FTVSRError

API_URL_ENV = "PREFECT_API_URL"
DEFAULT_HOME = Path(".prefect")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _healthy(url: str) -> bool:
    try:
        return httpx.get(f"{url}/health", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


def _stop(process: subprocess.Popen) -> None:
    """SIGTERM to the server's process group, then SIGKILL if it lingers."""
    for sig, wait_s in ((signal.SIGTERM, 10), (signal.SIGKILL, 5)):
        if process.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, sig)
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(timeout=wait_s)


@contextlib.contextmanager
def prefect_server(
    home: Path | None = None, timeout_s: float = 180, env: Mapping[str, str] | None = None
) -> Iterator[str]:
    """`prefect server start` on a free port of 127.0.0.1; yields its API URL once it answers.

    `home`: its PREFECT_HOME (database and logs; default: PREFECT_HOME, else `.prefect/`). The
    server log goes to ``<home>/server.log``. `env`: its environment (default: this process's).
    FTVSRError if it exits or does not answer in time.
    """
    home = Path(home or os.environ.get("PREFECT_HOME") or DEFAULT_HOME).resolve()
    home.mkdir(parents=True, exist_ok=True)
    port = _free_port()
    url = f"http://127.0.0.1:{port}/api"
    environment = {k: v for k, v in (os.environ if env is None else env).items() if k != API_URL_ENV}
    # PREFECT_UI_API_URL: the UI's pages ask this port's API, not the default 4200's, so the
    # "View at ..." links in the stages' logs open the runs.
    environment.update(PREFECT_HOME=str(home), PREFECT_SERVER_ANALYTICS_ENABLED="false", PREFECT_UI_API_URL=url)
    log_path = home / "server.log"
    with log_path.open("w") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "prefect", "server", "start", "--host", "127.0.0.1", "--port", str(port)],
            env=environment,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        deadline = time.monotonic() + timeout_s
        while not _healthy(url):
            if process.poll() is not None:
                raise FTVSRError(f"the Prefect server exited ({process.returncode}); its log: {log_path}")
            if time.monotonic() > deadline:
                raise FTVSRError(f"the Prefect server did not answer within {timeout_s:.0f} s; its log: {log_path}")
            time.sleep(0.5)
        yield url
    finally:
        _stop(process)


def run_with_server(command: list[str]) -> int:
    """Run `command` with PREFECT_API_URL set (a server started for it unless one is set); its exit code."""
    if os.environ.get(API_URL_ENV):
        return subprocess.run(command).returncode
    with prefect_server() as url:
        return subprocess.run(command, env={**os.environ, API_URL_ENV: url}).returncode


def main() -> None:
    command = sys.argv[1:]
    if command[:1] == ["--"]:
        command = command[1:]
    if not command or command[0] in ("-h", "--help"):
        print(__doc__)
        sys.exit(0 if command else 2)
    try:
        sys.exit(run_with_server(command))
    except FTVSRError as err:
        print(f"error: {err}", file=sys.stderr)
        sys.exit(1)
    except KeyboardInterrupt:
        sys.exit(130)


if __name__ == "__main__":
    main()
