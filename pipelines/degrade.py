"""Stage `degrade`: every HR clip to raw LR in the same layout, one task per clip.

A clip whose dataset comes with its own LR frames (REDS' X4, in ``--dataset-lr``) takes them as
they are, linked, unless `data.regenerate_lr`; every other clip is degraded (BD or BI x4).
Tasks, retries and resuming: see `pipelines/_common.py`.
"""

from __future__ import annotations

from pathlib import Path

from prefect import flow

import ftvsr.data.arrange
import ftvsr.data.degrade
import ftvsr.data.imresize
from ftvsr.data import layout
from ftvsr.io.frames import list_frames
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


@stage_task("degrade {clip}")
def degrade_clip(clip: str, src_clip: Path, dst_clip: Path, method: str, scale: int, given_lr: Path | None) -> int:
    """Make the LR clip `dst_clip` (kept if already complete): `given_lr` linked, or `src_clip` degraded."""
    if given_lr is not None:
        if not ftvsr.data.arrange.clip_is_linked(given_lr, dst_clip):
            ftvsr.data.arrange.link_lr_clip(given_lr, src_clip, dst_clip, scale)
        return len(list_frames(dst_clip))
    if ftvsr.data.degrade.clip_is_done(src_clip, dst_clip):
        return len(list_frames(dst_clip))
    return ftvsr.data.degrade.degrade_clip(src_clip, dst_clip, method=method, scale=scale)


@flow(name="degrade", flow_run_name=stage_flow_run_name("degrade"))
def degrade_flow(
    src: Path,
    dst: Path,
    params_file: Path = PARAMS_FILE,
    task_runner: TaskRunnerKind = "threads",
    workers: Workers | None = None,
    dataset_lr: Path | None = None,
) -> dict[str, int]:
    """LR of every clip of ``src/{train,test/<dataset>}`` into `dst`; ``{"<set>/<clip>": frames}``.

    `dataset_lr`: the fetch stage's folder of LR frames that come with the dataset (same layout).
    """
    data = load_params(params_file).data
    runner = make_task_runner(task_runner, data.workers if workers is None else workers)
    given = None if data.regenerate_lr or dataset_lr is None else dataset_lr
    jobs = {}
    for folder in layout.set_folders(src):  # every clip checked before anything is written
        method = (
            data.test_degradation.get(folder.name, data.degradation)
            if folder.parent.name == layout.TEST
            else data.degradation
        )
        for clip in ftvsr.data.degrade.set_clips(src / folder):
            name = (folder / clip).as_posix()
            given_clip = None if given is None else given / folder / clip
            jobs[name] = {
                "clip": name,
                "src_clip": src / folder / clip,
                "method": method,
                "scale": data.scale,
                "given_lr": given_clip if given_clip is not None and given_clip.is_dir() else None,
            }
    settings = {
        "method": data.degradation,
        "test_degradation": data.test_degradation,
        "scale": data.scale,
        "given": sorted(name for name, job in jobs.items() if job["given_lr"] is not None),
    }
    inputs = [src] if given is None else [src, given]
    modules = [ftvsr.data.degrade, ftvsr.data.imresize, ftvsr.data.arrange]
    with stage_output(dst, stage_key(settings, modules, inputs)) as work:
        jobs = {name: {**job, "dst_clip": work / name} for name, job in jobs.items()}
        return run_tasks(runner, degrade_clip, jobs)


def main() -> None:
    parser = stage_parser(__doc__, task_runner=True)
    parser.add_argument("--src", type=Path, required=True, help="HR root")
    parser.add_argument("--dst", type=Path, required=True, help="LR root for level raw")
    parser.add_argument("--dataset-lr", type=Path, default=None, help="LR frames that come with the dataset")
    args = parser.parse_args()
    run_stage(lambda: degrade_flow(args.src, args.dst, args.params, args.task_runner, args.workers, args.dataset_lr))


if __name__ == "__main__":
    main()
