"""Stage `compress@CRF`: every raw-LR clip through H.264 at one CRF, decoded back to frames, one task per clip.

Each set folder also gets its ``bitrate.csv``. Tasks, retries and caching: see `pipelines/_common.py`.
"""

from __future__ import annotations

from pathlib import Path

from prefect import flow

import ftvsr.data.compress
import ftvsr.data.degrade
import ftvsr.io.video
from ftvsr.data import layout
from ftvsr.data.compress import ClipStats
from ftvsr.params import PARAMS_FILE, CompressSettings, Crf, load_params
from pipelines._common import (
    TaskRunnerKind,
    Workers,
    make_task_runner,
    run_stage,
    run_tasks,
    stage_key,
    stage_output,
    stage_parser,
    stage_task,
)


@stage_task("compress crf {crf} {clip}")
def compress_clip(clip: str, src_clip: Path, dst: Path, crf: int, settings: CompressSettings) -> ClipStats:
    """Compress the clip folder `src_clip` into `dst` (kept if already complete); its `ClipStats`."""
    options = settings.model_dump()
    if ftvsr.data.compress.clip_is_done(src_clip, dst, crf, **options):
        stats = ftvsr.data.compress.load_clip_stats(dst, src_clip.name)
        if stats is not None:  # done means its stats were readable a moment ago
            return stats
    return ftvsr.data.compress.compress_clip_folder(src_clip, dst, crf, **options)


@flow(name="compress")
def compress_flow(
    src: Path,
    dst: Path,
    crf: Crf,
    params_file: Path = PARAMS_FILE,
    task_runner: TaskRunnerKind = "threads",
    workers: Workers | None = None,
) -> dict[str, float]:
    """Compress every clip of ``src/{train,test/<dataset>}`` at `crf` into `dst`; ``{"<set>/<clip>": kbit/s}``."""
    data = load_params(params_file).data
    ftvsr.data.compress.check_crf(crf)
    runner = make_task_runner(task_runner, data.workers if workers is None else workers)
    sets = {folder: ftvsr.data.degrade.set_clips(src / folder) for folder in layout.set_folders(src)}
    settings = {"crf": crf, **data.compress.model_dump()}
    with stage_output(dst, stage_key(settings, [ftvsr.data.compress, ftvsr.io.video], inputs=[src])) as work:
        jobs = {
            (folder / clip).as_posix(): {
                "clip": (folder / clip).as_posix(),
                "src_clip": src / folder / clip,
                "dst": work / folder,
                "crf": crf,
                "settings": data.compress,
            }
            for folder, clips in sets.items()  # every clip checked (set_clips) before anything is written
            for clip in clips
        }
        stats = run_tasks(runner, compress_clip, jobs)
        for folder, clips in sets.items():
            ftvsr.data.compress.write_bitrate_table(work / folder, clips)
    return {name: clip_stats.bitrate_kbps for name, clip_stats in stats.items()}


def main() -> None:
    parser = stage_parser(__doc__, task_runner=True)
    parser.add_argument("--crf", type=int, required=True)
    parser.add_argument("--src", type=Path, required=True, help="raw LR root")
    parser.add_argument("--dst", type=Path, required=True, help="LR root for this CRF")
    args = parser.parse_args()
    run_stage(lambda: compress_flow(args.src, args.dst, args.crf, args.params, args.task_runner, args.workers))


if __name__ == "__main__":
    main()
