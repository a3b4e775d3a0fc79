"""Training: schedule, phases, NaN handling, bad input, validation, DDP gradients (gloo, CPU).

Tiny configurations (mid_channels 8, one block, 64-wide frequency transformer, 3 frames of 16x16
LR); real LMDBs and process groups. Resuming (and DDP end to end through torchrun): test_resume.py.
"""

from __future__ import annotations

import json
import logging
import math
import os
import socket
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from pydantic import ValidationError
from torch.utils.data import Dataset

from ftvsr.errors import FTVSRError
from ftvsr.io.frames import write_clip
from ftvsr.io.lmdb_store import pack_lmdb
from ftvsr.losses import charbonnier_loss
from ftvsr.models import FTVSR
from ftvsr.params import ModelSettings, TrainSettings
from ftvsr.train import (
    ClipOrder,
    apply_phase,
    cosine_restart_lr,
    learning_rate,
    list_checkpoints,
    load_checkpoint,
    loss_windows,
    main,
    part_of,
    setup_distributed,
    train,
    trainable_parts,
    wrap_model,
)

ROOT = Path(__file__).resolve().parents[1]
TINY = dict(mid_channels=8, num_blocks=1, ftt_channels=64, d_model=64, n_heads=2)


def tiny_model(**overrides) -> ModelSettings:
    return ModelSettings(**{**TINY, "flow": "zero", **overrides})


def tiny_train(**overrides) -> TrainSettings:
    settings = dict(
        iterations=4,
        batch_size=2,
        num_frames=3,
        gt_patch_size=64,
        crf_levels=["raw", 15],
        fix_iter=0,
        fix_ttvsr=0,
        log_every=1,
        eval_every=1000,
        checkpoint_every=2,
        threads=1,
        optimizer={"lr": 1e-3},
    )
    settings.update(overrides)
    settings.setdefault("scheduler", {"periods": [settings["iterations"]], "restart_weights": [1.0], "min_lr": 1e-7})
    return TrainSettings(**settings)


class TinyClips(Dataset):
    """`n` random clips: GT (t, 3, 64, 64) and its 4x4 block mean as LQ; NaN GT for `nan_indices`."""

    def __init__(self, n: int = 4, t: int = 3, nan_indices: tuple[int, ...] = ()):
        generator = torch.Generator().manual_seed(1)
        self.gt = torch.rand(n, t, 3, 64, 64, generator=generator)
        self.lq = torch.nn.functional.avg_pool2d(self.gt.flatten(0, 1), 4).view(n, t, 3, 16, 16)
        self.nan_indices = set(nan_indices)

    def __len__(self) -> int:
        return len(self.gt)

    def __getitem__(self, index: int) -> dict:
        gt = self.gt[index].clone()
        if index in self.nan_indices:
            gt[0, 0, 0, 0] = float("nan")
        return {"lq": self.lq[index], "gt": gt}


@pytest.fixture(scope="module")
def lmdbs(tmp_path_factory) -> tuple[Path, dict]:
    """Real packed LMDBs: one clip of 6 frames, GT 80x80, LQ 20x20 at levels raw and 15."""
    root = tmp_path_factory.mktemp("lmdb")
    rng = np.random.default_rng(0)
    gt = rng.integers(0, 256, (6, 80, 80, 3), dtype=np.uint8)
    raw = gt.reshape(6, 20, 4, 20, 4, 3).mean(axis=(2, 4)).round().astype(np.uint8)
    crf15 = np.clip(raw.astype(int) + rng.integers(-8, 9, raw.shape), 0, 255).astype(np.uint8)
    paths = {}
    for name, frames in (("gt", gt), ("raw", raw), ("15", crf15)):
        write_clip(root / f"{name}_set" / "clip", frames)
        paths[name] = pack_lmdb(root / f"{name}_set", root / f"{name}.lmdb", progress=False)
    return paths["gt"], {"raw": paths["raw"], 15: paths["15"]}


def _csv_rows(path: Path) -> list[tuple[int, float, float]]:
    lines = path.read_text().splitlines()
    assert lines[0] == "step,loss,lr"
    return [(int(s), float(loss), float(lr)) for s, loss, lr in (line.split(",") for line in lines[1:])]


def _weights(path: Path) -> dict[str, torch.Tensor]:
    return torch.load(path, weights_only=True)["state_dict"]


# ---------------------------------------------------------------- schedule


def test_cosine_restart_lr_is_mmcv_formula_at_chosen_iterations():
    base, low = 2e-4, 1e-7
    # one period (the published 400k schedule): cos from base at 0 to min_lr at the end
    assert cosine_restart_lr(0, base, [400_000], [1.0], low) == pytest.approx(base, rel=1e-12)
    assert cosine_restart_lr(200_000, base, [400_000], [1.0], low) == pytest.approx((base + low) / 2, rel=1e-12)
    assert cosine_restart_lr(100_000, base, [400_000], [1.0], low) == pytest.approx(
        low + 0.5 * (base - low) * (1 + math.sqrt(0.5)), rel=1e-12
    )
    assert cosine_restart_lr(399_999, base, [400_000], [1.0], low) == pytest.approx(
        low + 0.5 * (base - low) * (1 + math.cos(math.pi * 399_999 / 400_000)), rel=1e-12
    )
    # restarts: each cycle starts at min_lr + weight * (base - min_lr)
    periods, weights = [10, 20], [1.0, 0.5]
    assert cosine_restart_lr(9, base, periods, weights, low) == pytest.approx(
        low + 0.5 * (base - low) * (1 + math.cos(math.pi * 0.9)), rel=1e-12
    )
    assert cosine_restart_lr(10, base, periods, weights, low) == pytest.approx(low + 0.5 * (base - low), rel=1e-12)
    assert cosine_restart_lr(20, base, periods, weights, low) == pytest.approx(
        low + 0.25 * (base - low) * (1 + math.cos(math.pi * 0.5)), rel=1e-12
    )
    with pytest.raises(FTVSRError, match="past the cosine schedule"):
        cosine_restart_lr(30, base, periods, weights, low)
    # SPyNet's group: base x 0.125 but the same absolute min_lr (mmcv's min_lr is not scaled)
    settings = tiny_train(iterations=30, scheduler={"periods": periods, "restart_weights": weights, "min_lr": low})
    assert learning_rate(15, base * 0.125, settings.scheduler) == pytest.approx(
        low + 0.5 * 0.5 * (base * 0.125 - low) * (1 + math.cos(math.pi * 5 / 20)), rel=1e-12
    )
    assert learning_rate(15, base, tiny_train(scheduler={"name": "constant"}).scheduler) == base


def test_invalid_schedules_are_rejected():
    with pytest.raises(ValidationError, match="same length"):
        TrainSettings(iterations=10, fix_iter=0, fix_ttvsr=0, scheduler={"periods": [5, 5], "restart_weights": [1]})
    with pytest.raises(ValidationError, match="fix_ttvsr"):
        TrainSettings(iterations=10, fix_iter=0, fix_ttvsr=20, scheduler={"periods": [10]})
    with pytest.raises(ValidationError, match="sum to 8, fewer than iterations"):
        tiny_train(iterations=10, scheduler={"periods": [4, 4], "restart_weights": [1, 1]})
    with pytest.raises(ValidationError, match="greater than or equal to 0"):
        tiny_train(scheduler={"periods": [2, 2], "restart_weights": [1, -1]})
    tiny_train(iterations=10, scheduler={"name": "constant"})  # no periods needed


def test_learning_rates_of_a_run_follow_the_schedule(tmp_path):
    settings = tiny_train(iterations=4, checkpoint_every=4, scheduler={"periods": [3, 3], "restart_weights": [1, 0.5]})
    result = train(
        tiny_model(),
        settings,
        dataset=TinyClips(),
        out_model=tmp_path / "m.pt",
        work_dir=tmp_path / "work",
        progress=False,
    )
    lrs = [lr for _, _, lr in _csv_rows(result.loss_csv)]
    expected = [cosine_restart_lr(i, 1e-3, [3, 3], [1, 0.5], 1e-7) for i in range(4)]
    assert lrs == pytest.approx(expected, rel=1e-6)
    assert lrs[3] == pytest.approx(1e-7 + 0.5 * (1e-3 - 1e-7), rel=1e-6)  # the restart at iteration 3


# ---------------------------------------------------------------- phases


def _published_requires_grad(iteration: int, fix_iter: int, fix_ttvsr: int, freeze_dct: bool) -> dict[str, bool]:
    """Replay the published TTVSR.train_step on {part: requires_grad} from a fresh model (whose DCT
    convs are built with requires_grad=False) up to and including `iteration`."""
    grad = {"ftt": True, "dct": False, "spynet": True, "rest": True}
    weight_fixed = False
    for step in range(iteration + 1):
        if step < fix_iter:
            if not weight_fixed:
                weight_fixed = True
                grad["spynet"] = False
        elif step == fix_iter:
            grad = dict.fromkeys(grad, True)
            if freeze_dct:
                grad["dct"] = False
        if step < fix_ttvsr:
            grad["spynet"] = grad["rest"] = False
        elif step == fix_ttvsr:
            grad = dict.fromkeys(grad, True)
            if freeze_dct:
                grad["dct"] = False
    return grad


def test_phases_follow_the_recipe():
    reds = tiny_train(iterations=20, fix_iter=4, fix_ttvsr=10, freeze_dct=True)
    assert trainable_parts(0, reds) == {"ftt"}
    assert trainable_parts(9, reds) == {"ftt"}
    assert trainable_parts(10, reds) == {"ftt", "rest", "spynet"}
    late_spynet = tiny_train(iterations=20, fix_iter=15, fix_ttvsr=10)
    assert trainable_parts(12, late_spynet) == {"ftt", "rest"}
    assert trainable_parts(15, late_spynet) == {"ftt", "rest", "spynet"}
    assert "spynet" not in trainable_parts(19, tiny_train(iterations=20, freeze_spynet=True))
    assert "dct" in trainable_parts(0, tiny_train(freeze_dct=False))
    assert part_of("spynet.basic_module.0.basic_module.0.conv.weight") == "spynet"
    assert part_of("FTT.dct.dct_conv.weight") == part_of("FTT.rdct.reverse_dct_conv.weight") == "dct"
    assert part_of("FTT.ftta.layer_q.weight") == "ftt"
    assert part_of("LTAM.fusion.weight") == "rest"


@pytest.mark.parametrize(
    "fix_iter,fix_ttvsr,freeze_dct",
    [(4, 10, True), (4, 10, False), (5, 0, False), (5, 0, True), (8, 3, False), (0, 0, True), (3, 3, False)],
)
def test_published_quirk_replays_the_published_train_step(fix_iter, fix_ttvsr, freeze_dct):
    settings = tiny_train(
        iterations=12, fix_iter=fix_iter, fix_ttvsr=fix_ttvsr, freeze_dct=freeze_dct, published_freezing=True
    )
    for iteration in range(12):
        published = _published_requires_grad(iteration, fix_iter, fix_ttvsr, freeze_dct)
        assert trainable_parts(iteration, settings) == {p for p, on in published.items() if on}, iteration
    # the Vimeo-90K config (fix_iter 5000, no fix_ttvsr): the published code trains SPyNet from step 0
    vimeo = tiny_train(iterations=6000, fix_iter=5000, fix_ttvsr=0, freeze_dct=False, published_freezing=True)
    assert "spynet" in trainable_parts(0, vimeo)
    assert "spynet" not in trainable_parts(0, vimeo.model_copy(update={"published_freezing": False}))


def test_phases_decide_which_parameters_get_gradients():
    torch.manual_seed(0)
    model = FTVSR(**tiny_model(flow="spynet").model_dump())
    lq, gt = torch.rand(1, 3, 3, 16, 16), torch.rand(1, 3, 3, 64, 64)
    settings = tiny_train(iterations=4, fix_iter=2, fix_ttvsr=1)
    for iteration, expected in [(0, {"ftt"}), (1, {"ftt", "rest"}), (2, {"ftt", "rest", "spynet"})]:
        apply_phase(model, trainable_parts(iteration, settings))
        charbonnier_loss(model(lq), gt).backward()
        with_grad = {part_of(n) for n, p in model.named_parameters() if p.grad is not None}
        without = {part_of(n) for n, p in model.named_parameters() if p.grad is None}
        assert with_grad == expected, iteration
        assert without == {"ftt", "rest", "spynet", "dct"} - expected, iteration  # DCT frozen (freeze_dct)
        model.zero_grad(set_to_none=True)
    # without freeze_dct (the published Vimeo-90K recipe) the DCT bases train too
    apply_phase(model, trainable_parts(2, tiny_train(iterations=4, fix_iter=2, fix_ttvsr=1, freeze_dct=False)))
    charbonnier_loss(model(lq), gt).backward()
    assert model.FTT.dct.dct_conv.weight.grad is not None


def test_training_leaves_frozen_parts_untouched(tmp_path):
    settings = tiny_train(iterations=2, fix_ttvsr=2, fix_iter=2, checkpoint_every=2)
    result = train(
        tiny_model(flow="spynet"),
        settings,
        dataset=TinyClips(),
        out_model=tmp_path / "m.pt",
        work_dir=tmp_path / "work",
        progress=False,
    )
    torch.manual_seed(settings.seed)  # train() builds the model right after this seed
    initial = FTVSR(**tiny_model(flow="spynet").model_dump()).state_dict()
    trained = _weights(result.model_path)
    changed = {part_of(n) for n, w in trained.items() if not torch.equal(w, initial[n])}
    assert changed == {"ftt"}
    for name in ("FTT.dct.dct_conv.weight", "FTT.rdct.reverse_dct_conv.weight"):
        assert torch.equal(trained[name], initial[name])


# ---------------------------------------------------------------- non-finite losses


def test_nan_loss_skips_the_update_and_training_goes_on(tmp_path, caplog):
    # batch 1, two samples: index 0 (NaN) comes once per epoch of 2 iterations: at most twice in a row
    settings = tiny_train(iterations=6, batch_size=1, max_nonfinite_steps=3, checkpoint_every=6)
    with caplog.at_level(logging.WARNING, logger="ftvsr.train"):
        result = train(
            tiny_model(),
            settings,
            dataset=TinyClips(n=2, nan_indices=(0,)),
            out_model=tmp_path / "m.pt",
            work_dir=tmp_path / "work",
            progress=False,
        )
    assert result.nonfinite_steps == 3
    assert "update skipped" in caplog.text
    losses = [loss for _, loss, _ in _csv_rows(result.loss_csv)]
    assert sum(math.isnan(v) for v in losses) == 3 and all(math.isfinite(v) or math.isnan(v) for v in losses)
    assert all(torch.isfinite(w).all() for w in _weights(result.model_path).values())
    state = load_checkpoint(list_checkpoints(tmp_path / "work")[0])
    steps = {int(s["step"]) for s in state["optimizer"]["state"].values()}
    assert steps == {3}  # Adam stepped only on the finite iterations


def test_nan_losses_in_a_row_stop_with_a_clear_error(tmp_path):
    settings = tiny_train(iterations=6, batch_size=1, max_nonfinite_steps=2)
    with pytest.raises(FTVSRError, match="2 iterations in a row with a non-finite loss"):
        train(
            tiny_model(),
            settings,
            dataset=TinyClips(n=2, nan_indices=(0, 1)),
            out_model=tmp_path / "m.pt",
            work_dir=tmp_path / "work",
            progress=False,
        )
    assert not (tmp_path / "m.pt").exists()


def test_loss_windows():
    history = [(1.0, 0.1), (3.0, 0.2), (float("nan"), 0.3), (5.0, 0.4), (7.0, 0.5)]
    assert loss_windows(history, 2) == [(2, 2.0, 0.2), (4, 5.0, 0.4), (5, 7.0, 0.5)]
    assert math.isnan(loss_windows([(float("inf"), 0.1)], 3)[0][1])


# ---------------------------------------------------------------- bad input


def test_dataset_smaller_than_one_batch_is_an_error(tmp_path):
    with pytest.raises(FTVSRError, match="fewer than one global batch"):
        train(
            tiny_model(),
            tiny_train(batch_size=2),
            dataset=TinyClips(n=1),
            out_model=tmp_path / "m.pt",
            work_dir=tmp_path / "work",
            progress=False,
        )


def test_unwritable_resume_directory_is_an_error_before_training(tmp_path):
    blocker = tmp_path / "a_file"
    blocker.write_text("not a folder")
    with pytest.raises(FTVSRError, match=r"resume directory .* is not writable"):
        train(
            tiny_model(),
            tiny_train(),
            dataset=TinyClips(),
            out_model=tmp_path / "m.pt",
            work_dir=blocker / "work",
            progress=False,
        )
    assert not (tmp_path / "m.pt").exists()


@pytest.mark.skipif(hasattr(os, "geteuid") and os.geteuid() == 0, reason="root writes into read-only folders")
def test_read_only_resume_directory_is_an_error(tmp_path):
    work = tmp_path / "work"
    (work / "checkpoints").mkdir(parents=True)
    (work / "checkpoints").chmod(0o500)
    try:
        with pytest.raises(FTVSRError, match="not writable"):
            train(
                tiny_model(),
                tiny_train(),
                dataset=TinyClips(),
                out_model=tmp_path / "m.pt",
                work_dir=work,
                progress=False,
            )
    finally:
        (work / "checkpoints").chmod(0o700)


def test_entry_point_reports_errors_in_one_line(tmp_path, capsys):
    common = ["--gt-lmdb", "gt", "--out-model", str(tmp_path / "m.pt"), "--work-dir", str(tmp_path / "w")]
    assert main(["--params", str(tmp_path / "missing.yaml"), "--lq-lmdb", "raw=lq", *common]) == 1
    assert "params file not found" in capsys.readouterr().err
    (tmp_path / "params.yaml").write_text(json.dumps({"profile": "t", "evaluate": {"datasets": []}}))
    assert main(["--params", str(tmp_path / "params.yaml"), "--lq-lmdb", "raw", *common]) == 1
    assert "error: --lq-lmdb expects LEVEL=PATH, got 'raw'" in capsys.readouterr().err


def test_either_lmdbs_or_a_dataset(tmp_path):
    with pytest.raises(FTVSRError, match="either gt_lmdb and lq_lmdbs, or a dataset"):
        train(tiny_model(), tiny_train(), out_model=tmp_path / "m.pt", work_dir=tmp_path / "w", progress=False)


def test_validation_on_a_clip_pair_and_data_independent_of_workers(tmp_path, lmdbs):
    gt_lmdb, lq_lmdbs = lmdbs
    rng = np.random.default_rng(1)
    gt = rng.integers(0, 256, (3, 64, 64, 3), dtype=np.uint8)
    write_clip(tmp_path / "val_gt", gt)
    write_clip(tmp_path / "val_lq", gt.reshape(3, 16, 4, 16, 4, 3).mean(axis=(2, 4)).astype(np.uint8))
    settings = tiny_train(iterations=2, eval_every=1, checkpoint_every=2)
    results = {}
    for workers in (0, 2):
        results[workers] = train(
            tiny_model(),
            settings.model_copy(update={"num_workers": workers}),
            gt_lmdb=gt_lmdb,
            lq_lmdbs=lq_lmdbs,
            out_model=tmp_path / f"{workers}" / "m.pt",
            work_dir=tmp_path / f"{workers}" / "work",
            progress=False,
            val=(tmp_path / "val_lq", tmp_path / "val_gt"),
        )
    assert set(results[0].val_metrics) == {"val_psnr"} and 5 < results[0].val_metrics["val_psnr"] < 40
    # samples are drawn from (seed, epoch, index), whichever process builds them
    assert results[0].loss_csv.read_text() == results[2].loss_csv.read_text()
    assert results[0].val_metrics == results[2].val_metrics


# ---------------------------------------------------------------- DDP


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _gradient_setup():
    """The same model, batch and phase in every process: SPyNet frozen (used, but no gradient)."""
    torch.manual_seed(0)
    model = FTVSR(**tiny_model(flow="spynet").model_dump())
    generator = torch.Generator().manual_seed(3)
    lq, gt = torch.rand(2, 3, 3, 16, 16, generator=generator), torch.rand(2, 3, 3, 64, 64, generator=generator)
    return model, lq, gt, trainable_parts(0, tiny_train(freeze_spynet=True))


def _ddp_gradient_worker(rank: int, world_size: int, port: int, out: str) -> None:
    os.environ.update(
        MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), WORLD_SIZE=str(world_size), LOCAL_RANK=str(rank)
    )
    torch.set_num_threads(1)
    place, created = setup_distributed("cpu")
    model, lq, gt, parts = _gradient_setup()
    net = wrap_model(model, place)
    apply_phase(model, parts)
    # rank r holds sample r of the global batch, as ClipOrder deals them
    charbonnier_loss(net(lq[rank : rank + 1]), gt[rank : rank + 1]).backward()
    torch.save({n: p.grad for n, p in model.named_parameters()}, f"{out}.{rank}")
    if created:
        dist.destroy_process_group()


def test_ddp_gradients_match_a_single_process_on_the_same_global_batch(tmp_path):
    mp.spawn(_ddp_gradient_worker, args=(2, _free_port(), str(tmp_path / "grads")), nprocs=2, join=True)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # the workers' kernels
    try:
        model, lq, gt, parts = _gradient_setup()
        apply_phase(model, parts)
        per_sample = {}  # what DDP computes: the mean of the per-process gradients
        for i in (0, 1):
            charbonnier_loss(model(lq[i : i + 1]), gt[i : i + 1]).backward()
            per_sample[i] = {n: None if p.grad is None else p.grad.clone() for n, p in model.named_parameters()}
            model.zero_grad(set_to_none=True)
        charbonnier_loss(model(lq), gt).backward()  # the global batch in one process
    finally:
        torch.set_num_threads(threads)
    for rank in (0, 1):
        ddp = torch.load(tmp_path / f"grads.{rank}", weights_only=True)
        for name, param in model.named_parameters():
            if part_of(name) in ("spynet", "dct"):  # frozen: no gradient anywhere
                assert ddp[name] is None and param.grad is None
            else:
                mean = (per_sample[0][name] + per_sample[1][name]) / 2
                torch.testing.assert_close(ddp[name], mean, rtol=1e-6, atol=1e-12)
        # the batch-of-2 kernels sum in another order; some tensors' gradients are small sums of
        # large cancelling terms, so compare the whole gradient: measured 1.4e-6 relative
        difference = sum(((ddp[n] - p.grad) ** 2).sum() for n, p in model.named_parameters() if p.grad is not None)
        norm = sum((p.grad**2).sum() for p in model.parameters() if p.grad is not None)
        assert math.sqrt(difference / norm) < 1e-5
    # the global batch of an iteration is the same set of samples for 1 x 2 and 2 x 1
    one = ClipOrder(10, 2, 1, 0, seed=5, start=0, end=8)
    two = [ClipOrder(10, 1, 2, r, seed=5, start=0, end=8) for r in (0, 1)]
    for iteration in range(8):
        assert sorted(one.keys(iteration)) == sorted(two[0].keys(iteration) + two[1].keys(iteration))


def test_bf16_autocast_trains_with_float32_weights_and_changes_the_forward(tmp_path):
    """`precision: bf16` autocasts the forward (here on the CPU); weights, gradients and the loss stay float32."""
    results = {}
    for precision in ("fp32", "bf16"):
        results[precision] = train(
            tiny_model(),
            tiny_train(iterations=2, batch_size=1, checkpoint_every=2, precision=precision),
            dataset=TinyClips(n=2),
            out_model=tmp_path / precision / "m.pt",
            work_dir=tmp_path / precision / "work",
            progress=False,
        )
    losses = {p: [loss for _, loss, _ in _csv_rows(r.loss_csv)] for p, r in results.items()}
    assert all(math.isfinite(v) for v in losses["bf16"])
    assert losses["bf16"] != losses["fp32"]  # the autocast really ran
    assert losses["bf16"] == pytest.approx(losses["fp32"], rel=0.05)
    assert all(w.dtype == torch.float32 for w in _weights(results["bf16"].model_path).values() if w.is_floating_point())
