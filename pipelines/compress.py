"""Stage `compress@CRF`: every raw-LR clip through H.264 at one CRF, decoded back to frames, one task per clip.

Each set folder also gets its ``bitrate.csv``; the Prefect UI shows the clips' bitrates as the
table artifact ``compress-<profile>-<crf>``. Tasks, retries and caching: see `pipelines/_common.py`.
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
    artifact_key,
    make_task_runner,
    publish_table,
    run_stage,
    run_tasks,
    stage_flow_run_name,
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


@flow(name="compress", flow_run_name=stage_flow_run_name("compress@{crf}"))
def compress_flow(
    src: Path,
    dst: Path,
    crf: Crf,
    params_file: Path = PARAMS_FILE,
    task_runner: TaskRunnerKind = "threads",
    workers: Workers | None = None,
) -> dict[str, float]:
    """Compress every clip of ``src/{train,test/<dataset>}`` at `crf` into `dst`; ``{"<set>/<clip>": kbit/s}``."""
    params = load_params(params_file)
    data = params.data
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
    publish_bitrates(params.profile, crf, data.compress, stats)
    return {name: clip_stats.bitrate_kbps for name, clip_stats in stats.items()}


def publish_bitrates(profile: str, crf: int, settings: CompressSettings, stats: dict[str, ClipStats]) -> None:
    """The clips' bitrates at `crf` as the table artifact ``compress-<profile>-<crf>`` (one key per CRF)."""
    rows = [
        {
            "clip": name,
            "frames": clip.frames,
            "size": f"{clip.width}x{clip.height}",
            "kbit/s": round(clip.bitrate_kbps, 1),
            "PSNR dB": round(clip.psnr_db, 2),
            "bytes": clip.bytes,
        }
        for name, clip in stats.items()
    ]
    description = (
        f"H.264 at CRF {crf} ({settings.codec}, preset {settings.preset}, {settings.pix_fmt}, {settings.fps:g} fps): "
        "each clip's bitrate, and the PSNR of its decoded frames against the raw LR"
    )
    publish_table(artifact_key("compress", profile, crf), rows, description)


def main() -> None:
    parser = stage_parser(__doc__, task_runner=True)
    parser.add_argument("--crf", type=int, required=True)
    parser.add_argument("--src", type=Path, required=True, help="raw LR root")
    parser.add_argument("--dst", type=Path, required=True, help="LR root for this CRF")
    args = parser.parse_args()
    run_stage(lambda: compress_flow(args.src, args.dst, args.crf, args.params, args.task_runner, args.workers))


if __name__ == "__main__":
    main()
