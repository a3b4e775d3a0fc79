"""Training speed and memory: seconds per iteration and peak memory of `ftvsr.train`'s step.

    python benchmarks/train.py [--profile profiles/sample.yaml] [--iterations 5] [--warmup 2]

What one iteration is: the step of `ftvsr.train.train` (schedule, phase, forward, Charbonnier
loss, backward, DDP gradient averaging, Adam update) on random clips of the profile's shape
(`batch_size` clips per process of `num_frames` frames, `gt_patch_size / 4` LR pixels square),
in the late phase where every part of the network trains. Data loading is left out (random
tensors): this measures the network, not the disk. Each time is the median of the timed
iterations.

CPU: 1 process using every core, then 2 gloo DDP processes sharing them (1 core each,
`batch_size` clips each: the global batch doubles), and 1 process on 1 core for reference.
Peak memory is each process's peak resident set (ru_maxrss), which includes Python and torch
themselves.

CUDA (when present): fp32 and bf16 autocast for the sample profile, then a few iterations
of the paper profile (profiles/paper.yaml if present, else the published defaults of
ModelSettings / TrainSettings) to estimate its time per 1k iterations; peak memory is
torch.cuda.max_memory_allocated.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import socket
import sys
import tempfile
import time
from pathlib import Path

import torch
import torch.distributed as dist
import torch.multiprocessing as mp

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from ftvsr.losses import charbonnier_loss  # noqa: E402
from ftvsr.models import FTVSR  # noqa: E402
from ftvsr.params import ModelSettings, TrainSettings, load_params  # noqa: E402
from ftvsr.train import (  # noqa: E402
    apply_phase,
    build_optimizer,
    set_learning_rate,
    setup_distributed,
    trainable_parts,
    wrap_model,
)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def measure(
    model_settings: ModelSettings,
    train_settings: TrainSettings,
    iterations: int,
    warmup: int,
    device: str = "cpu",
    precision: str = "fp32",
) -> dict:
    """Time `iterations` training steps after `warmup` ones in this process (DDP if the environment
    says so); return seconds per iteration and peak memory in MiB."""
    place, created = setup_distributed(device)
    torch.manual_seed(train_settings.seed)
    model = FTVSR(**model_settings.model_dump()).to(place.device).train()
    optimizer = build_optimizer(model, train_settings.optimizer)
    net = wrap_model(model, place)
    apply_phase(model, trainable_parts(train_settings.iterations - 1, train_settings))
    p = train_settings.gt_patch_size // 4
    shape = (train_settings.batch_size, train_settings.num_frames, 3)
    lq = torch.rand(*shape, p, p, device=place.device)
    gt = torch.rand(*shape, 4 * p, 4 * p, device=place.device)
    autocast = torch.autocast(place.device.type, dtype=torch.bfloat16, enabled=precision == "bf16")
    if place.device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(place.device)
    times = []
    for iteration in range(warmup + iterations):
        if place.device.type == "cuda":
            torch.cuda.synchronize(place.device)
        if place.world_size > 1:
            dist.barrier()
        start = time.perf_counter()
        set_learning_rate(optimizer, iteration, train_settings.scheduler)
        with autocast:
            loss = charbonnier_loss(net(lq).float(), gt, train_settings.charbonnier_eps)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        loss.item()  # the loop reads the loss every iteration
        if place.device.type == "cuda":
            torch.cuda.synchronize(place.device)
        times.append(time.perf_counter() - start)
    if place.device.type == "cuda":
        peak = torch.cuda.max_memory_allocated(place.device) / 2**20
    else:
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
    if created:
        dist.destroy_process_group()
    measured = sorted(times[warmup:])
    return {"seconds_per_iteration": measured[len(measured) // 2], "peak_mib": peak}  # the median


def _worker(rank: int, world_size: int, port: int, threads: int, config: str, out: str) -> None:
    os.environ.update(
        MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), WORLD_SIZE=str(world_size), LOCAL_RANK=str(rank)
    )
    torch.set_num_threads(threads)
    cfg = json.loads(config)
    result = measure(ModelSettings(**cfg["model"]), TrainSettings(**cfg["train"]), cfg["iterations"], cfg["warmup"])
    Path(f"{out}.{rank}").write_text(json.dumps(result))


def cpu_cores() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def cpu_processes(
    model_settings: ModelSettings,
    train_settings: TrainSettings,
    world_size: int,
    iterations: int,
    warmup: int,
    threads: int | None = None,
) -> dict:
    """Run `measure` in `world_size` fresh processes (sharing the cores unless `threads` is given);
    the slowest rank's time."""
    threads = threads or max(1, cpu_cores() // world_size)
    config = json.dumps(
        {
            "model": model_settings.model_dump(mode="json"),
            "train": train_settings.model_dump(mode="json"),
            "iterations": iterations,
            "warmup": warmup,
        }
    )
    with tempfile.TemporaryDirectory() as tmp:
        out = str(Path(tmp) / "result")
        mp.spawn(_worker, args=(world_size, _free_port(), threads, config, out), nprocs=world_size, join=True)
        results = [json.loads(Path(f"{out}.{rank}").read_text()) for rank in range(world_size)]
    return {
        "processes": world_size,
        "threads": threads,
        "seconds_per_iteration": max(r["seconds_per_iteration"] for r in results),
        "peak_mib": max(r["peak_mib"] for r in results),
    }


def _settings(path: Path | None) -> tuple[ModelSettings, TrainSettings, str]:
    if path is not None and path.is_file():
        params = load_params(path)
        return params.model, params.train, str(path)
    return ModelSettings(), TrainSettings(), "published defaults (ModelSettings(), TrainSettings())"


def _row(cells: list[str], widths: list[int]) -> str:
    return " | ".join(c.ljust(w) for c, w in zip(cells, widths, strict=True))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--profile", type=Path, default=ROOT / "profiles" / "sample.yaml")
    parser.add_argument("--paper-profile", type=Path, default=ROOT / "profiles" / "paper.yaml")
    parser.add_argument("--iterations", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=2)
    args = parser.parse_args()

    model_settings, train_settings, source = _settings(args.profile)
    p = train_settings.gt_patch_size // 4
    print(f"sample configuration: {source}")
    print(f"  model {model_settings.model_dump()}")
    print(
        f"  per process: {train_settings.batch_size} clips x {train_settings.num_frames} frames of {p}x{p} LR "
        f"-> {4 * p}x{4 * p}; {args.iterations} timed iterations after {args.warmup} warm-up\n"
    )

    header = ["device", "processes", "threads/proc", "precision", "clips/iter", "s/iter", "clips/s", "peak MiB/proc"]
    rows = []
    cpu = [cpu_processes(model_settings, train_settings, n, args.iterations, args.warmup) for n in (1, 2)]
    if cpu_cores() > 1:  # for reference: one process on one core
        cpu.append(cpu_processes(model_settings, train_settings, 1, args.iterations, args.warmup, threads=1))
    for r in cpu:
        clips = train_settings.batch_size * r["processes"]
        rows.append(
            [
                "cpu",
                str(r["processes"]),
                str(r["threads"]),
                "fp32",
                str(clips),
                f"{r['seconds_per_iteration']:.3f}",
                f"{clips / r['seconds_per_iteration']:.2f}",
                f"{r['peak_mib']:.0f}",
            ]
        )

    paper_estimate = None
    if torch.cuda.is_available():
        name = torch.cuda.get_device_name(0)
        for precision in ("fp32", "bf16"):
            r = measure(model_settings, train_settings, args.iterations, args.warmup, "cuda", precision)
            rows.append(
                [
                    name,
                    "1",
                    "-",
                    precision,
                    str(train_settings.batch_size),
                    f"{r['seconds_per_iteration']:.3f}",
                    f"{train_settings.batch_size / r['seconds_per_iteration']:.2f}",
                    f"{r['peak_mib']:.0f}",
                ]
            )
        paper_model, paper_train, paper_source = _settings(args.paper_profile)
        paper_estimate = [f"paper configuration: {paper_source}"]
        for precision in ("fp32", "bf16"):
            try:
                r = measure(paper_model, paper_train, max(2, args.iterations // 2), 1, "cuda", precision)
            except torch.cuda.OutOfMemoryError:
                paper_estimate.append(f"  {precision}: out of GPU memory on {name}")
                torch.cuda.empty_cache()
                continue
            per_1k = r["seconds_per_iteration"] * 1000
            paper_estimate.append(
                f"  {precision}: {r['seconds_per_iteration']:.2f} s/iter -> {per_1k / 60:.1f} min per 1k iterations, "
                f"{per_1k * paper_train.iterations / 1000 / 3600:.1f} h for {paper_train.iterations} iterations "
                f"on one {name} (batch {paper_train.batch_size}); peak {r['peak_mib']:.0f} MiB"
            )

    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(header)]
    print(_row(header, widths))
    print("-+-".join("-" * w for w in widths))
    for row in rows:
        print(_row(row, widths))
    one, two = cpu[:2]
    print(
        f"\n2 processes vs 1 (same cores): {two['seconds_per_iteration'] / one['seconds_per_iteration']:.2f}x "
        f"the time per iteration for 2x the clips -> throughput x"
        f"{2 * one['seconds_per_iteration'] / two['seconds_per_iteration']:.2f}"
    )
    if paper_estimate:
        print("\n" + "\n".join(paper_estimate))
    else:
        print("\nno CUDA device: fp32 / bf16 and the paper profile's estimate need one")


if __name__ == "__main__":
    main()
