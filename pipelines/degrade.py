"""Stage `degrade`: every HR clip to LR (BD or BI x4) in the same layout, one task per clip.

Tasks, retries and caching: see `pipelines/_common.py`.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from prefect import flow

import ftvsr.data.degrade
import ftvsr.data.imresize
from ftvsr.data import layout
from ftvsr.io.frames import list_frames
from ftvsr.params import PARAMS_FILE, load_params
from pipelines._common import (
    TaskRunnerKind,
    Workers,
    make_task_runner,
    prepare_output,
    run_stage,
    run_tasks,
    stage_key,
    stage_parser,
    stage_task,
)


@stage_task("degrade {clip}", modules=("ftvsr.data.degrade", "ftvsr.data.imresize"), reads=("src_clip",))
def degrade_clip(clip: str, src_clip: Path, dst_clip: Path, method: str, scale: int) -> int:
    """Degrade the clip folder `src_clip` into `dst_clip` (kept if already complete); its frame count."""
    if ftvsr.data.degrade.clip_is_done(src_clip, dst_clip):
        return len(list_frames(dst_clip))
    return ftvsr.data.degrade.degrade_clip(src_clip, dst_clip, method=method, scale=scale)


def _clip_is_done(job: Mapping[str, Any]) -> bool:
    return ftvsr.data.degrade.clip_is_done(job["src_clip"], job["dst_clip"])


@flow(name="degrade")
def degrade_flow(
    src: Path,
    dst: Path,
    params_file: Path = PARAMS_FILE,
    task_runner: TaskRunnerKind = "threads",
    workers: Workers | None = None,
) -> dict[str, int]:
    """Degrade every clip of ``src/{train,test/<dataset>}`` into `dst`; ``{"<set>/<clip>": frames}``."""
    data = load_params(params_file).data
    runner = make_task_runner(task_runner, data.workers if workers is None else workers)
    jobs = {}
    for folder in layout.set_folders(src):  # every clip checked before anything is written
        method = (
            data.test_degradation.get(folder.name, data.degradation)
            if folder.parent.name == layout.TEST
            else data.degradation
        )
        for clip in ftvsr.data.degrade.set_clips(src / folder):
            name = (folder / clip).as_posix()
            jobs[name] = {
                "clip": name,
                "src_clip": src / folder / clip,
                "dst_clip": dst / folder / clip,
                "method": method,
                "scale": data.scale,
            }
    settings = {"method": data.degradation, "test_degradation": data.test_degradation, "scale": data.scale}
    prepare_output(dst, stage_key(settings, [ftvsr.data.degrade, ftvsr.data.imresize], inputs=[src]))
    return run_tasks(runner, degrade_clip, jobs, done=_clip_is_done)


def main() -> None:
    parser = stage_parser(__doc__, task_runner=True)
    parser.add_argument("--src", type=Path, required=True, help="HR root")
    parser.add_argument("--dst", type=Path, required=True, help="LR root for level raw")
    args = parser.parse_args()
    run_stage(lambda: degrade_flow(args.src, args.dst, args.params, args.task_runner, args.workers))


if __name__ == "__main__":
    main()
