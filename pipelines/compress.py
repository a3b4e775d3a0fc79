"""Stage `compress@CRF`: every raw-LR set folder through H.264 at one CRF, decoded back to frames."""
from __future__ import annotations

from pathlib import Path

from prefect import flow, task

import ftvsr.data.compress
import ftvsr.io.video
from ftvsr.data import layout
from ftvsr.params import PARAMS_FILE, CompressSettings, load_params
from pipelines._common import prepare_output, run_stage, stage_key, stage_parser


@task(task_run_name="compress {src.name} crf {crf}")
def compress_set(src: Path, dst: Path, crf: int, settings: CompressSettings, workers: int) -> None:
    ftvsr.data.compress.compress_folder(src, dst, crf, workers=workers, **settings.model_dump())


@flow(name="compress")
def compress_flow(src: Path, dst: Path, crf: int, params_file: Path = PARAMS_FILE) -> None:
    data = load_params(params_file).data
    ftvsr.data.compress.check_crf(crf)
    folders = layout.set_folders(src)  # checked before anything is written
    prepare_output(dst, stage_key({"crf": crf, **data.compress.model_dump()}, [ftvsr.data.compress, ftvsr.io.video]))
    for folder in folders:
        compress_set(src / folder, dst / folder, crf, data.compress, data.workers)


def main() -> None:
    parser = stage_parser(__doc__)
    parser.add_argument("--crf", type=int, required=True)
    parser.add_argument("--src", type=Path, required=True, help="raw LR root")
    parser.add_argument("--dst", type=Path, required=True, help="LR root for this CRF")
    args = parser.parse_args()
    run_stage(lambda: compress_flow(args.src, args.dst, args.crf, args.params))


if __name__ == "__main__":
    main()
