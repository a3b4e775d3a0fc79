"""Stage `pack`: the training clips (HR and LR at every level) into LMDBs, one task per LMDB.

Tasks, retries and caching: see `pipelines/_common.py`.
"""

from __future__ import annotations

from pathlib import Path

from prefect import flow

import ftvsr.io.lmdb_store
from ftvsr.data import layout
from ftvsr.params import PARAMS_FILE, load_params
from pipelines._common import (
    TaskRunnerKind,
    Workers,
    make_task_runner,
    run_stage,
    run_tasks,
    stage_flow_run_name,
    stage_key,
    stage_output,
    stage_parser,
    stage_task,
)


@stage_task("pack {name}")
def pack_set(name: str, src: Path, dst: Path) -> str:
    """Pack the set folder `src` into the LMDB `dst` (verified); an existing one is complete (atomic rename)."""
    if not dst.exists():
        ftvsr.io.lmdb_store.pack_lmdb(src, dst, verify=True, progress=False)
    return str(dst)


@flow(name="pack", flow_run_name=stage_flow_run_name("pack"))
def pack_flow(
    hr: Path,
    lr: Path,
    dst: Path,
    params_file: Path = PARAMS_FILE,
    task_runner: TaskRunnerKind = "threads",
    workers: Workers | None = None,
) -> dict[str, str]:
    """Pack `hr` and ``lr/<level>/train`` for raw and every CRF into ``dst/{hr,<level>}.lmdb``."""
    data = load_params(params_file).data
    runner = make_task_runner(task_runner, data.workers if workers is None else workers)
    hr_lmdb, lr_lmdbs = layout.training_lmdbs(dst, data.crfs)
    sources = {hr_lmdb: hr, **{path: lr / layout.level_name(level) / layout.TRAIN for level, path in lr_lmdbs.items()}}
    levels = ["raw", *data.crfs]
    with stage_output(dst, stage_key({"levels": levels}, [ftvsr.io.lmdb_store], inputs=list(sources.values()))) as work:
        jobs = {path.name: {"name": path.name, "src": src, "dst": work / path.name} for path, src in sources.items()}
        return run_tasks(runner, pack_set, jobs)


def main() -> None:
    parser = stage_parser(__doc__, task_runner=True)
    parser.add_argument("--hr", type=Path, required=True, help="HR training set folder")
    parser.add_argument("--lr", type=Path, required=True, help="LR root holding one folder per level")
    parser.add_argument("--dst", type=Path, required=True, help="folder for the LMDBs")
    args = parser.parse_args()
    run_stage(lambda: pack_flow(args.hr, args.lr, args.dst, args.params, args.task_runner, args.workers))


if __name__ == "__main__":
    main()
