"""Stage `degrade`: every HR set folder to LR (BD or BI x4) in the same layout."""
from __future__ import annotations

from pathlib import Path

from prefect import flow, task

import ftvsr.data.degrade
import ftvsr.data.imresize
from ftvsr.data import layout
from ftvsr.params import PARAMS_FILE, load_params
from pipelines._common import prepare_output, run_stage, stage_key, stage_parser


@task(task_run_name="degrade {src.name}")
def degrade_set(src: Path, dst: Path, method: str, scale: int, workers: int) -> list[str]:
    return ftvsr.data.degrade.degrade_folder(src, dst, method=method, scale=scale, workers=workers)


@flow(name="degrade")
def degrade_flow(src: Path, dst: Path, params_file: Path = PARAMS_FILE) -> None:
    data = load_params(params_file).data
    settings = {"method": data.degradation, "scale": data.scale}
    folders = layout.set_folders(src)  # checked before anything is written
    prepare_output(dst, stage_key(settings, [ftvsr.data.degrade, ftvsr.data.imresize]))
    for folder in folders:
        degrade_set(src / folder, dst / folder, data.degradation, data.scale, data.workers)


def main() -> None:
    parser = stage_parser(__doc__)
    parser.add_argument("--src", type=Path, required=True, help="HR root")
    parser.add_argument("--dst", type=Path, required=True, help="LR root for level raw")
    args = parser.parse_args()
    run_stage(lambda: degrade_flow(args.src, args.dst, args.params))


if __name__ == "__main__":
    main()
