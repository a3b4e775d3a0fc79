"""Time and peak memory of FTVSR's forward: ours against the published L x L attention.

Both paths are the same module (random weights, the published default configuration); the
reference sets `attention="materialized"`, which builds the full attention matrix exactly as
the published code does (nn.MultiheadAttention returning its weights). Each (size, path)
runs in a fresh subprocess, so its peak memory is its own:

- CPU: peak resident set size of the process (`resource.getrusage(...).ru_maxrss`), shown
  as the peak and as the increase over the RSS just before the first forward (model built,
  input allocated);
- CUDA: `torch.cuda.max_memory_allocated()` during the forwards.

Times are wall-clock seconds of one forward under `torch.inference_mode()`: the minimum over
`--repeat` runs after `--warmup` untimed runs, with one torch thread by default (`--threads`):
on a CPU shared with other jobs, multi-threaded timings swing by several times. The first
call on a new frame size includes oneDNN's kernel generation (several seconds on CPU); at
180x320 both paths pay it once unless warm-up is asked for.

Measured on a 2-core x86-64 CPU (AMD EPYC), no GPU, with other work on the cores (timings
move by ~5 %), 2 frames, 1 thread, one run of this script: at 64x64 (1024 attention tokens)
both paths take ~2.8-3.0 s and ~600 MB; at 180x320 (14080 tokens) ours took 35.9 s and 1.7 GB peak RSS, the
reference 75.3 s and 7.4 GB (2.10x time, 4.35x peak memory, 5.4x the forward's own increase).
Run right after on the same CPU, the code from before the CPU inference kernels
(`ftvsr.models.onednn`, `ftvsr.models.winograd`): ours 61.3 s / 2.0 GB, the reference
98.6 s / 7.3 GB (1.61x). Re-run with the cores otherwise idle, the final code: ours 35.0 s /
1.6 GB, the reference 80.0 s / 7.3 GB (2.29x time, 4.54x peak memory).

The two paths differ only in the attention, so the kernels that speed up shared layers
(channels-last convolutions, Winograd F(4x4, 3x3) for the frequency transformer's 512- and
1024-channel convolutions, oneDNN for the linear layers and 1x1 convolutions) cut both
times; ours also computes its attention by blocks of queries through oneDNN (~2.5 s per
attention layer at 180x320, against ~4 s in `scaled_dot_product_attention`'s CPU kernel,
whose products go through MKL, slow on that AMD CPU). Ours at 180x320, roughly: attention
layers ~10 s, the first stage's 64-channel convolutions ~8 s, the frequency transformer's
convolutions ~7 s, SPyNet on the 4x frames ~4.5 s; the convolutions and products all run
near the core's float32 peak (~240 GFLOP/s).

    python benchmarks/model.py --quick            # 64x64 only
    python benchmarks/model.py                    # 64x64 and 180x320 (minutes on a CPU)
    python benchmarks/model.py --device cuda --amp bf16 --compile
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PATHS = {"ours": "sdpa", "reference": "materialized"}


def _rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def worker(args: argparse.Namespace) -> None:
    """Run one (size, path) in this process and print one JSON line."""
    import torch

    sys.path.insert(0, str(ROOT))
    from ftvsr.models import FTVSR

    if args.threads:
        torch.set_num_threads(args.threads)
    h, w = args.size
    torch.manual_seed(0)
    model = FTVSR(attention=PATHS[args.path]).eval()
    device = torch.device(args.device)
    model.to(device)
    lrs = torch.rand(1, args.frames, 3, h, w, generator=torch.Generator().manual_seed(1)).to(device)
    forward = torch.compile(model) if args.compile else model
    amp_dtype = {"none": None, "bf16": torch.bfloat16, "fp16": torch.float16}[args.amp]

    def run():
        with torch.inference_mode(), torch.autocast(device.type, dtype=amp_dtype, enabled=amp_dtype is not None):
            out = forward(lrs)
        if device.type == "cuda":
            torch.cuda.synchronize()
        return out

    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    rss_before = _rss_mb()
    for _ in range(args.warmup):
        run()
    times = []
    for _ in range(args.repeat):
        start = time.perf_counter()
        out = run()
        times.append(time.perf_counter() - start)
    result = {
        "time_s": min(times),
        "times_s": times,
        "rss_before_mb": rss_before,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "threads": torch.get_num_threads(),
    }
    if device.type == "cuda":
        result["peak_cuda_mb"] = torch.cuda.max_memory_allocated() / 2**20
    if args.output:
        torch.save(out.float().cpu(), args.output)
    print(json.dumps(result), flush=True)


def run_case(args: argparse.Namespace, size: tuple[int, int], path: str, output: Path) -> dict:
    warmup = args.warmup if args.warmup is not None else (1 if size[0] * size[1] <= 96 * 96 else 0)
    repeat = args.repeat if args.repeat is not None else (3 if size[0] * size[1] <= 96 * 96 else 1)
    command = [
        sys.executable,
        __file__,
        "--worker",
        "--path",
        path,
        "--sizes",
        f"{size[0]}x{size[1]}",
        "--frames",
        str(args.frames),
        "--device",
        args.device,
        "--amp",
        args.amp,
        "--warmup",
        str(warmup),
        "--repeat",
        str(repeat),
        "--threads",
        str(args.threads or 0),
        "--output",
        str(output),
    ] + (["--compile"] if args.compile else [])
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode != 0:
        return {"error": (done.stderr.strip().splitlines() or ["failed"])[-1]}
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", nargs="+", default=["64x64", "180x320"], help="LR sizes HxW")
    parser.add_argument("--quick", action="store_true", help="only 64x64")
    parser.add_argument("--frames", type=int, default=2)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--amp", choices=["none", "bf16", "fp16"], default="none")
    parser.add_argument("--compile", action="store_true", help="torch.compile the model (GPU)")
    parser.add_argument("--warmup", type=int, default=None, help="untimed runs (default 1 at <= 96x96, else 0)")
    parser.add_argument("--repeat", type=int, default=None, help="timed runs (default 3 at <= 96x96, else 1)")
    parser.add_argument(
        "--threads",
        type=int,
        default=1,
        help="torch threads (default 1: stable timings on a shared CPU; 0: torch's default)",
    )
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--path", choices=list(PATHS), help=argparse.SUPPRESS)
    parser.add_argument("--output", help=argparse.SUPPRESS)
    args = parser.parse_args()
    args.size = tuple(int(v) for v in args.sizes[0].split("x"))
    if args.worker:
        worker(args)
        return

    sizes = ["64x64"] if args.quick else args.sizes
    memory = "peak CUDA allocated" if args.device.startswith("cuda") else "peak RSS (ru_maxrss)"
    print(
        f"FTVSR default config, {args.frames} frames, device={args.device}, amp={args.amp}, "
        f"compile={args.compile}, threads={args.threads or 'default'}; memory = {memory}; "
        f"each case in its own process"
    )
    header = f"{'LR size':>9} {'path':>10} {'time s':>8} {'peak MB':>9} {'fwd +MB':>9}"
    print(header)
    import torch

    with tempfile.TemporaryDirectory() as tmp:
        for size_text in sizes:
            size = tuple(int(v) for v in size_text.split("x"))
            results = {}
            for path in PATHS:
                result = run_case(args, size, path, Path(tmp) / f"{path}.pt")
                results[path] = result
                if "error" in result:
                    print(f"{size_text:>9} {path:>10} failed: {result['error']}", flush=True)
                    continue
                peak = result.get("peak_cuda_mb", result["peak_rss_mb"])
                increase = peak - (0 if "peak_cuda_mb" in result else result["rss_before_mb"])
                result["peak"], result["increase"] = peak, increase
                print(f"{size_text:>9} {path:>10} {result['time_s']:>8.2f} {peak:>9.0f} {increase:>9.0f}", flush=True)
            if all("error" not in r for r in results.values()):
                ours, ref = results["ours"], results["reference"]
                difference = (torch.load(Path(tmp) / "ours.pt") - torch.load(Path(tmp) / "reference.pt")).abs()
                print(
                    f"{size_text:>9} {'ratio':>10} {ref['time_s'] / ours['time_s']:>7.2f}x "
                    f"{ref['peak'] / ours['peak']:>8.2f}x {ref['increase'] / max(ours['increase'], 1):>8.2f}x"
                    f"   (reference / ours; outputs differ by max {difference.max():.1e}, "
                    f"mean {difference.mean():.1e})",
                    flush=True,
                )


if __name__ == "__main__":
    main()
