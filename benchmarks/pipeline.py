"""The pipeline's data stages as Prefect flows: degrade + compress with 1 and 2 workers, side by side.

    python benchmarks/pipeline.py                           # threads, 4 clips x 24 frames of 1280x720
    python benchmarks/pipeline.py --task-runner processes --repeats 3
    python benchmarks/pipeline.py --task-runner both

Each timing is one whole flow call (`degrade_flow`, then `compress_flow` at one CRF) into a fresh
output folder, as a stage runs: Prefect's flow and task bookkeeping and the task runner's
start-up included (a process pool spawns its workers, which import Prefect). The HR clips are
centre crops of the embedded ``bigbuckbunny`` sample. Timings are noisy when other work shares
the cores, so the settings are interleaved and the best of `--repeats` is kept; the ratio is
best(1) / best(2).
Prefect runs on its ephemeral API with a throw-away home (no server needed).
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from functools import partial
from pathlib import Path

# Before Prefect is imported: its database and result records go to a throw-away home.
_HOME = tempfile.mkdtemp(prefix="ftvsr-bench-prefect-")
os.environ.setdefault("PREFECT_HOME", _HOME)
os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")

import numpy as np  # noqa: E402
import yaml  # noqa: E402
from prefect import get_client  # noqa: E402

from ftvsr.data.sample import sample_video_path  # noqa: E402
from ftvsr.io.frames import write_clip  # noqa: E402
from ftvsr.io.video import iter_video  # noqa: E402
from pipelines.compress import compress_flow  # noqa: E402
from pipelines.degrade import degrade_flow  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def make_hr_root(root: Path, clips: int, frames: int, height: int, width: int) -> int:
    """``root/train/<clip>`` HR clips cut from bigbuckbunny (consecutive frames); returns the frame total."""
    needed, decoded = clips * frames, []
    for frame in iter_video(sample_video_path("bigbuckbunny"), max_frames=min(needed, 132)):
        top, left = (frame.shape[0] - height) // 2, (frame.shape[1] - width) // 2
        decoded.append(frame[top : top + height, left : left + width].copy())
    while len(decoded) < needed:  # the video has 132 frames: wrap around for larger sets
        decoded.append(decoded[len(decoded) % 132])
    for c in range(clips):
        write_clip(root / "train" / f"{c:03d}", np.stack(decoded[c * frames : (c + 1) * frames]))
    return needed


def params_file(folder: Path, crf: int) -> Path:
    params = yaml.safe_load((ROOT / "profiles" / "sample.yaml").read_text())
    params["data"]["crfs"] = [crf]
    params["train"]["crf_levels"] = ["raw", crf]
    params["evaluate"]["levels"] = ["raw", crf]
    path = folder / "params.yaml"
    path.write_text(yaml.safe_dump(params, sort_keys=False))
    return path


def timed(run) -> tuple[float, float]:
    """(wall seconds of the flow call, seconds of its run: from Running to Completed, as Prefect records them).

    The wall time also holds Prefect's teardown, which waits for its heartbeat thread to wake up
    (it sleeps in whole seconds): up to 1 s per flow, whatever the work.
    """
    start = time.perf_counter()
    state = run()
    wall = time.perf_counter() - start
    if not state.is_completed():
        raise SystemExit(f"the flow failed: {state.message}")
    with get_client(sync_client=True) as client:
        flow_run = client.read_flow_run(state.state_details.flow_run_id)
    return wall, (flow_run.end_time - flow_run.start_time).total_seconds()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clips", type=int, default=4)
    parser.add_argument("--frames", type=int, default=24, help="frames per clip")
    parser.add_argument("--height", type=int, default=720)
    parser.add_argument("--width", type=int, default=1280)
    parser.add_argument("--crf", type=int, default=25)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--task-runner", choices=["threads", "processes", "both"], default="threads")
    args = parser.parse_args()
    runners = ["threads", "processes"] if args.task_runner == "both" else [args.task_runner]

    with tempfile.TemporaryDirectory(prefix="ftvsr-bench-pipeline-") as scratch:
        scratch = Path(scratch)
        total = make_hr_root(scratch / "hr", args.clips, args.frames, args.height, args.width)
        params = params_file(scratch, args.crf)
        print(
            f"{args.clips} clips x {args.frames} frames of {args.width}x{args.height} ({total} frames), "
            f"BD x4 then H.264 CRF {args.crf}; {os.cpu_count()} CPUs; best of {args.repeats}"
        )
        degrade_flow(scratch / "hr", scratch / "warm", params, workers=1)  # Prefect's API and imports, once
        best: dict[tuple[str, str, int], tuple[float, float]] = {}
        for repeat in range(args.repeats):
            for runner in runners:
                for workers in (1, 2):
                    out = scratch / f"{runner}-{workers}-{repeat}"
                    lr = out / "raw"
                    times = {
                        "degrade": timed(
                            partial(degrade_flow, scratch / "hr", lr, params, runner, workers, return_state=True)
                        ),
                        "compress": timed(
                            partial(
                                compress_flow,
                                lr,
                                out / str(args.crf),
                                args.crf,
                                params,
                                runner,
                                workers,
                                return_state=True,
                            )
                        ),
                    }
                    degrade, compress = times["degrade"], times["compress"]
                    times["degrade + compress"] = (degrade[0] + compress[0], degrade[1] + compress[1])
                    for stage, (wall, run) in times.items():
                        key = (runner, stage, workers)
                        best_wall, best_run = best.get(key, (float("inf"), float("inf")))
                        best[key] = (min(best_wall, wall), min(best_run, run))

        print("seconds of the flow runs (wall time of the flow calls in brackets)")
        print(f"{'task runner':<12} {'stage':<20} {'1 worker':>16} {'2 workers':>16} {'speed-up':>9}")
        for runner in runners:
            for stage in ("degrade", "compress", "degrade + compress"):
                (wall1, run1), (wall2, run2) = best[(runner, stage, 1)], best[(runner, stage, 2)]
                print(
                    f"{runner:<12} {stage:<20} {run1:>7.2f} ({wall1:>5.2f}) {run2:>7.2f} ({wall2:>5.2f}) "
                    f"{run1 / run2:>8.2f}x"
                )


if __name__ == "__main__":
    main()
