"""Stage `pack`: the training clips (HR and LR at every level) into LMDBs for the data loader."""
from __future__ import annotations

from pathlib import Path

from prefect import flow, task

import ftvsr.io.lmdb_store
from ftvsr.data import layout
from ftvsr.params import PARAMS_FILE, load_params
from pipelines._common import prepare_output, run_stage, stage_key, stage_parser


@task(task_run_name="pack {dst.name}")
def pack_set(src: Path, dst: Path) -> None:
    if not dst.exists():  # each LMDB appears whole (atomic rename): an existing one is done
        ftvsr.io.lmdb_store.pack_lmdb(src, dst, verify=True)


@flow(name="pack")
def pack_flow(hr: Path, lr: Path, dst: Path, params_file: Path = PARAMS_FILE) -> None:
    data = load_params(params_file).data
    levels = ["raw", *data.crfs]
    prepare_output(dst, stage_key({"levels": levels}, [ftvsr.io.lmdb_store]))
    pack_set(hr, dst / "hr.lmdb")
    for level in levels:
        name = layout.level_name(level)
        pack_set(lr / name / layout.TRAIN, dst / f"{name}.lmdb")


def main() -> None:
    parser = stage_parser(__doc__)
    parser.add_argument("--hr", type=Path, required=True, help="HR training set folder")
    parser.add_argument("--lr", type=Path, required=True, help="LR root holding one folder per level")
    parser.add_argument("--dst", type=Path, required=True, help="folder for the LMDBs")
    args = parser.parse_args()
    run_stage(lambda: pack_flow(args.hr, args.lr, args.dst, args.params))


if __name__ == "__main__":
    main()
