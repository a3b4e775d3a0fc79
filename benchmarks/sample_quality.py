"""Does the sample profile's trained FTVSR beat bicubic? Train with given settings and seeds, then score.

    python benchmarks/sample_quality.py --data /tmp/tune/data/sample --make-val /tmp/tune/val
    python benchmarks/sample_quality.py --data /tmp/tune/data/sample --val /tmp/tune/val \\
        --seeds 0 1 --set model.base_upsample=bicubic --set train.iterations=400
    python benchmarks/sample_quality.py ... --iters-only 20     # seconds per iteration, no scoring
    python benchmarks/sample_quality.py ... --untrained         # where training starts (no training)
    python benchmarks/sample_quality.py ... --test              # also the carphone test clip (final only)

The settings chosen with it are profiles/sample.yaml's; their three-seed check:

    python benchmarks/sample_quality.py --data /tmp/tune/data/sample --val /tmp/tune/val --seeds 0 1 2 --test

gave, Δ PSNR over bicubic at raw / 15 / 25 / 35 (mean of seeds 0, 1, 2, final network code):
validation +0.89 / +0.81 / +0.55 / +0.17 dB; carphone +0.78 / +0.70 / +0.53 / +0.09 dB (seed 0:
+0.81 / +0.72 / +0.57 / +0.13, as the pipeline's own run; lowest seed at CRF 35: +0.07).

Each run trains with the real trainer (`ftvsr.train.train`, what the DVC train stage runs) on
the packed training LMDBs of a prepared sample profile (`dvc repro pack` makes
`<data>/lmdb/{hr,raw,15,25,35}.lmdb`), from a fresh work folder, MLflow off. The settings are
those of `--profile` (default profiles/sample.yaml) with `--set section.key=YAML` overrides
applied; unless `train.scheduler.periods` is set, the cosine period follows `train.iterations`.

Scores: PSNR (RGB, whole frames, `ftvsr.evaluate.evaluate_set`) of the trained model minus
that of MATLAB bicubic, at raw and every CRF, on

- the validation clip (`--val`, for tuning): frames 100-131 of bigbuckbunny.mp4, which the
  sample's training clip (frames 0-99) does not contain; `--make-val DIR` builds it
  (centre crop 320x180 HR -> 80x45 LR, BD, H.264 CRF 15/25/35 as the pipeline does);
- the carphone test clip (`--test`): report it for the final choice only, never tune on it.

Every run appends one JSON line to `--log` (settings, seconds per iteration, deltas).
Timings depend on how busy the CPU's cores are: compare runs made under the same load
(`cpu_s_per_iter`, the process's CPU time, is steadier than the wall time). Set
`train.threads=1` when other work shares the cores: two intra-op threads on two busy cores
ran 6-20x slower on a 2-core x86-64 CPU. The base settings are read from `--profile` when the run starts:
pass every setting a comparison depends on as `--set`, in case the profile changes meanwhile.
"""

from __future__ import annotations

import argparse
import json
import logging
import resource
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import torch
import yaml

from ftvsr.data.compress import compress_folder
from ftvsr.data.degrade import degrade_folder
from ftvsr.data.layout import level_name
from ftvsr.data.sample import SampleClip, fetch_clip
from ftvsr.evaluate import evaluate_set
from ftvsr.params import Params, load_params
from ftvsr.results import overall_means
from ftvsr.train import train

VAL_CLIP = SampleClip(video="bigbuckbunny.mp4", first_frame=100, num_frames=32, max_height=180, max_width=320)
LEVELS = ["raw", 15, 25, 35]


def make_val(root: Path, crfs: list[int]) -> None:
    """The held-out validation set: root/hr/bbb_val and root/lr/<level>/bbb_val."""
    fetch_clip(root / "hr" / "bbb_val", VAL_CLIP)
    degrade_folder(root / "hr", root / "lr" / "raw", "bd", 4, workers=2, progress=False)
    for crf in crfs:
        compress_folder(root / "lr" / "raw", root / "lr" / str(crf), crf, workers=2, progress=False)


def _set(tree: dict, dotted: str, value: Any) -> None:
    keys = dotted.split(".")
    node = tree
    for key in keys[:-1]:
        node = node.setdefault(key, {})
    node[keys[-1]] = value


def settings_with(base: Params, overrides: list[str]) -> Params:
    """`base` with `section.key=YAML` overrides; the cosine period follows iterations unless set."""
    tree = base.model_dump(mode="json")
    explicit_periods = False
    for item in overrides:
        key, sep, text = item.partition("=")
        if not sep:
            raise SystemExit(f"--set expects KEY=VALUE, got {item!r}")
        _set(tree, key, yaml.safe_load(text))
        explicit_periods |= key.startswith("train.scheduler")
    if not explicit_periods and tree["train"]["scheduler"]["name"] == "cosine_restart":
        tree["train"]["scheduler"]["periods"] = [tree["train"]["iterations"]]
        tree["train"]["scheduler"]["restart_weights"] = [1.0]
    return Params.model_validate(tree)


def score(model: torch.nn.Module, lq_root: Path, gt_dir: Path, dataset: str, levels: list) -> dict[str, dict]:
    """{level: {bicubic, lanczos, ftvsr, delta, delta_lanczos}} mean PSNR over the clips of gt_dir (delta:
    FTVSR minus bicubic, delta_lanczos: minus Lanczos); LR at lq_root/<level>/..."""
    out = {}
    for level in levels:
        lq_dir = Path(str(lq_root).replace("{level}", level_name(level)))
        frames = evaluate_set(lq_dir, gt_dir, model=model, dataset=dataset, crf=str(level), progress=False)
        means = overall_means(frames).set_index("method")["psnr"]
        out[str(level)] = {
            "bicubic": float(means["bicubic"]),
            "lanczos": float(means["lanczos"]),
            "ftvsr": float(means["ftvsr"]),
            "delta": float(means["ftvsr"] - means["bicubic"]),
            "delta_lanczos": float(means["ftvsr"] - means["lanczos"]),
        }
    return out


def run_one(
    params: Params, seed: int, data: Path, val: Path | None, test: bool, iters_only: int | None, keep: Path | None
) -> dict[str, Any]:
    train_settings = params.train.model_copy(
        update={"seed": seed, "log_every": 10**6, "eval_every": 10**6, "checkpoint_every": 10**6}
    )
    if iters_only:
        train_settings = train_settings.model_copy(update={"iterations": iters_only})
    levels = ["raw", *params.data.crfs]
    lq_lmdbs = {level: data / "lmdb" / f"{level_name(level)}.lmdb" for level in levels}
    with tempfile.TemporaryDirectory(prefix="sample_quality_") as tmp:
        tmp = Path(tmp)
        out_model = (keep or tmp) / f"ftvsr_seed{seed}.pth"
        cpu0 = resource.getrusage(resource.RUSAGE_SELF)
        wall0 = time.perf_counter()
        result = train(
            params.model,
            train_settings,
            gt_lmdb=data / "lmdb" / "hr.lmdb",
            lq_lmdbs=lq_lmdbs,
            out_model=out_model,
            work_dir=tmp / "work",
            data_settings=params.data,
            mlflow_settings=None,
            progress=False,
        )
        wall = time.perf_counter() - wall0
        cpu1 = resource.getrusage(resource.RUSAGE_SELF)
        row: dict[str, Any] = {
            "seed": seed,
            "iterations": train_settings.iterations,
            "train_wall_s": round(wall, 1),
            "s_per_iter": round(result.seconds_per_iteration, 3),
            "cpu_s_per_iter": round(
                (cpu1.ru_utime + cpu1.ru_stime - cpu0.ru_utime - cpu0.ru_stime) / train_settings.iterations, 3
            ),
            "final_loss": result.final_loss,
        }
        if iters_only:
            return row
        from ftvsr.models import load_model

        model = load_model(out_model)
        if val is not None:
            row["val"] = score(model, val / "lr" / "{level}", val / "hr", "bbb_val", levels)
        if test:
            row["test"] = score(
                model,
                data / "lr" / "{level}" / "test" / "carphone",
                data / "hr" / "test" / "carphone",
                "carphone",
                levels,
            )
    return row


def score_untrained(params: Params, seed: int, data: Path, val: Path | None, test: bool, label: str) -> None:
    """Print the deltas of the untrained model: where training starts (the upsampled base)."""
    from ftvsr.models import FTVSR

    torch.manual_seed(seed)
    model = FTVSR(**params.model.model_dump())
    levels = ["raw", *params.data.crfs]
    if val is not None:
        block = score(model, val / "lr" / "{level}", val / "hr", "bbb_val", levels)
        print(f"[{label}] untrained val  {_fmt_deltas(block)}")
    if test:
        block = score(
            model, data / "lr" / "{level}" / "test" / "carphone", data / "hr" / "test" / "carphone", "carphone", levels
        )
        print(f"[{label}] untrained test {_fmt_deltas(block)}")


def _fmt_deltas(block: dict[str, dict]) -> str:
    return " ".join(f"{level}:{v['delta']:+.3f}" for level, v in block.items())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, required=True, help="a prepared sample data root (hr/, lr/, lmdb/)")
    parser.add_argument("--val", type=Path, help="the validation set made by --make-val")
    parser.add_argument("--make-val", type=Path, metavar="DIR", help="build the validation set into DIR and exit")
    parser.add_argument("--profile", type=Path, default=Path("profiles/sample.yaml"))
    parser.add_argument("--set", action="append", default=[], metavar="KEY=YAML", help="e.g. train.iterations=400")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--test", action="store_true", help="also score the carphone test clip")
    parser.add_argument("--iters-only", type=int, metavar="N", help="time N iterations, no scoring")
    parser.add_argument("--untrained", action="store_true", help="score the untrained model (its starting point)")
    parser.add_argument("--threads", type=int, help="torch threads for scoring (training: train.threads)")
    parser.add_argument("--keep", type=Path, help="keep the trained models in this folder")
    parser.add_argument("--label", default="", help="a name for this configuration in the log")
    parser.add_argument("--log", type=Path, default=Path("sample_quality.jsonl"))
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)

    base = load_params(args.profile)
    if args.make_val:
        make_val(args.make_val, base.data.crfs)
        print(f"validation set written to {args.make_val}")
        return
    if args.threads:
        torch.set_num_threads(args.threads)
    params = settings_with(base, args.set)
    if args.keep:
        args.keep.mkdir(parents=True, exist_ok=True)
    if args.untrained:
        score_untrained(params, args.seeds[0], args.data, args.val, args.test, args.label)
        return
    rows = []
    for seed in args.seeds:
        row = run_one(params, seed, args.data, args.val, args.test, args.iters_only, args.keep)
        row.update(label=args.label, overrides=args.set)
        rows.append(row)
        with args.log.open("a") as log:
            log.write(json.dumps(row) + "\n")
        line = (
            f"[{args.label}] seed {seed}: {row['iterations']} it, {row['s_per_iter']} s/it "
            f"(cpu {row['cpu_s_per_iter']}), train {row['train_wall_s']} s, loss {row['final_loss']:.4g}"
        )
        if "val" in row:
            line += f"\n  val  {_fmt_deltas(row['val'])}"
        if "test" in row:
            line += f"\n  test {_fmt_deltas(row['test'])}"
        print(line, flush=True)
    for block in ("val", "test"):
        if len(rows) > 1 and block in rows[0]:
            mean = {
                level: {"delta": statistics.mean(r[block][level]["delta"] for r in rows)} for level in rows[0][block]
            }
            print(f"[{args.label}] mean {block} over seeds {args.seeds}: {_fmt_deltas(mean)}")


if __name__ == "__main__":
    main()
