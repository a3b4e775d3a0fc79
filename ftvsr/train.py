"""Training: the loop, torchrun DDP, the published schedule and phases, exact resume, MLflow.

One process:           python -m ftvsr.train --params params.yaml --gt-lmdb ... --lq-lmdb raw=... ...
Several (one machine): torchrun --nproc_per_node N -m ftvsr.train --params params.yaml ...

The recipe is the published one (configs/FTVSR_reds4.py and FTVSR_vimeo90k.py, the restorer
mmedit/models/restorers/ttvsr.py, mmcv's CosineRestart):

- loss: Charbonnier, eps 1e-12, mean over every element (`ftvsr.losses`);
- optimizer: Adam (REDS) or AdamW with weight decay 0.05 (Vimeo-90K), lr 2e-4, betas
  (0.9, 0.99); SPyNet's parameters at lr x 0.125 (mmcv's `paramwise_cfg.custom_keys`);
- schedule: mmcv's CosineRestart by iteration (`cosine_restart_lr`), applied before each
  iteration; the minimum lr is the same absolute value for every parameter group;
- phases (`trainable_parts`): before `fix_ttvsr` only the frequency transformer (`FTT`)
  trains; SPyNet from max(fix_iter, fix_ttvsr) (never with `freeze_spynet`); the DCT bases
  stay fixed with `freeze_dct`. `published_freezing=True` replays what the published `train_step`
  actually does instead (see `trainable_parts`);
- one global batch per iteration: `batch_size` clips per process; DDP averages gradients,
  so N processes x batch b compute what one process computes with batch N x b.

Exact resume: every `checkpoint_every` iterations (and at the end) `work_dir/checkpoints/`
gets the unwrapped model, the optimizer, the iteration, every rank's RNG states, the loss
history and the run identity (`run_identity`: the settings that change the result, a content
fingerprint of the training data, the number of processes). A run started on a work_dir
continues from the newest readable checkpoint if its identity is the same, and stops with an
error naming what differs otherwise; RESUMABLE_CHANGES lists the settings that may change in
between (`iterations`: raise it to train on). Which clip (and which augmentation) each rank
trains on at iteration i is a pure function of (seed, i) (`ClipOrder`), and the lr one of i,
so a resumed run sees the same data as an uninterrupted one; on a CPU it reproduces it bit
for bit. A run deletes only its own older checkpoints (it keeps its newest KEEP_CHECKPOINTS),
never unreadable files or another run's.

The loop (`train`) reads top-down: setup, `_resume`, then per iteration `train_step` and the
periodic actions (log to MLflow, validate, `_write_checkpoint`), then the outputs.

Outputs (rank 0): the model (`save_model`) and `<model stem>_loss.csv` (`step,loss,lr`: the
mean loss of each `log_every` window and the lr of its last iteration) beside it; in MLflow,
the run with its curves and the model, registered (`ftvsr.tracking`).
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import logging
import math
import os
import random
import re
import sys
import time
from collections.abc import Callable, Iterator, Mapping, Sized
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader, Dataset, Sampler
from tqdm import tqdm

from ftvsr import tracking
from ftvsr.errors import FTVSRError
from ftvsr.io.atomic import atomic_path, write_text_atomic
from ftvsr.io.lmdb_store import CONTENT_DIGEST_FILE, DATA_FILE, META_FILE, is_lmdb
from ftvsr.io.parallel import torch_threads
from ftvsr.losses import charbonnier_loss
from ftvsr.models import FTVSR, load_spynet_weights, save_model
from ftvsr.params import (
    DataSettings,
    MlflowSettings,
    ModelSettings,
    OptimizerSettings,
    SchedulerSettings,
    TrainSettings,
    load_params,
)

log = logging.getLogger(__name__)

CHECKPOINT_DIR = "checkpoints"
CHECKPOINT_FORMAT = "ftvsr-train-state"
CHECKPOINT_VERSION = 2  # 2: the run identity holds the data fingerprint; the run's own checkpoints
KEEP_CHECKPOINTS = 2  # a run keeps its newest two: if the last one is damaged, the one before still resumes
EPOCH_REPEAT = 1000  # an epoch visits every clip this often (the published RepeatDataset(times=1000))
# Settings that do not change what a run computes: a checkpoint resumes with other values of these.
# (`iterations` too: the data, schedule and phases of iteration i do not depend on it.)
RESUMABLE_CHANGES = frozenset(
    {"iterations", "log_every", "eval_every", "checkpoint_every", "num_workers", "threads", "max_nonfinite_steps"}
)

Validation = Callable[[nn.Module], Mapping[str, float]] | tuple[str | os.PathLike, str | os.PathLike]


@dataclass(frozen=True)
class TrainResult:
    """What a training run produced (paths are written by rank 0 only)."""

    model_path: Path
    loss_csv: Path
    run_id: str | None  # MLflow run id (None untracked, and on ranks other than 0)
    iterations: int
    start_iteration: int  # 0 for a fresh run, else the checkpoint's iteration
    final_loss: float  # mean loss of the last log window
    nonfinite_steps: int  # iterations skipped for a non-finite loss, in all
    seconds_per_iteration: float | None  # wall time of this session's iterations
    val_metrics: dict[str, float] = field(default_factory=dict)


def loss_csv_path(out_model: str | os.PathLike) -> Path:
    """Where the loss curve goes: `<model stem>_loss.csv` beside the model."""
    out_model = Path(out_model)
    return out_model.with_name(f"{out_model.stem}_loss.csv")


# ================================================================ schedule


def annealing_cos(start: float, end: float, factor: float, weight: float = 1.0) -> float:
    """Cosine from `start` (factor 0) to `end` (factor 1), its amplitude scaled by `weight` (mmcv)."""
    return end + 0.5 * weight * (start - end) * (math.cos(math.pi * factor) + 1)


def cosine_restart_lr(
    iteration: int, base_lr: float, periods: list[int], restart_weights: list[float], min_lr: float
) -> float:
    """mmcv's CosineRestartLrUpdaterHook (by_epoch=False) for 0-based `iteration`:

        k      = the first cycle with iteration < periods[0] + ... + periods[k]
        start  = periods[0] + ... + periods[k - 1]   (0 for k = 0)
        alpha  = min((iteration - start) / periods[k], 1)
        lr     = min_lr + 0.5 * restart_weights[k] * (base_lr - min_lr) * (1 + cos(pi * alpha))

    mmcv sets this lr before the iteration runs, so iteration 0 trains at base_lr.
    """
    cycle_start = 0
    for period, weight in zip(periods, restart_weights, strict=True):
        if iteration < cycle_start + period:
            return annealing_cos(base_lr, min_lr, min((iteration - cycle_start) / period, 1.0), weight)
        cycle_start += period
    raise FTVSRError(
        f"iteration {iteration} is past the cosine schedule's periods {periods} (they add up to {cycle_start})"
    )


def learning_rate(iteration: int, base_lr: float, scheduler: SchedulerSettings) -> float:
    """The lr of a parameter group with initial lr `base_lr` at 0-based `iteration`."""
    if scheduler.name == "constant":
        return base_lr
    return cosine_restart_lr(iteration, base_lr, scheduler.periods, scheduler.restart_weights, scheduler.min_lr)


# ================================================================ phases

PARTS = ("ftt", "dct", "spynet", "rest")


def part_of(name: str) -> str:
    """Which part of FTVSR a parameter name belongs to (names as in the published model)."""
    if name.startswith("spynet."):
        return "spynet"
    if name.startswith(("FTT.dct.", "FTT.rdct.")):
        return "dct"
    if name.startswith("FTT."):
        return "ftt"
    return "rest"


def trainable_parts(iteration: int, settings: TrainSettings) -> frozenset[str]:
    """The parts of FTVSR that train at 0-based `iteration`.

    Default (the recipe as described): the frequency transformer always; everything else
    from `fix_ttvsr`; SPyNet from max(fix_iter, fix_ttvsr), never with `freeze_spynet`; the
    DCT bases never with `freeze_dct`.

    `published_freezing=True`: what the published `TTVSR.train_step` does to a fresh model.
    Its DCT bases are built with requires_grad=False and only switched on when the freezing
    is re-applied (`generator.requires_grad_(True)` at iteration fix_iter or fix_ttvsr), so
    they stay fixed until min(fix_iter, fix_ttvsr) and then train unless `freeze_dct`. The
    same re-application at fix_ttvsr undoes the SPyNet freeze: SPyNet trains from fix_ttvsr
    whatever fix_iter says (in the Vimeo-90K config, fix_ttvsr = 0: from the first iteration).
    (The published DDP wrapper also registered only the parameters that required gradients at
    the start, so a DCT trained that way was never averaged across GPUs; `wrap_model` registers
    every parameter.)
    """
    parts = {"ftt"}
    if iteration >= settings.fix_ttvsr:
        parts.add("rest")
    if settings.published_freezing:
        spynet = iteration >= settings.fix_ttvsr
        dct = not settings.freeze_dct and iteration >= min(settings.fix_iter, settings.fix_ttvsr)
    else:
        spynet = iteration >= max(settings.fix_iter, settings.fix_ttvsr)
        dct = not settings.freeze_dct
    if spynet and not settings.freeze_spynet:
        parts.add("spynet")
    if dct:
        parts.add("dct")
    return frozenset(parts)


def apply_phase(model: nn.Module, parts: frozenset[str]) -> None:
    """Set requires_grad of every parameter of `model` (unwrapped) to whether its part trains."""
    for name, param in model.named_parameters():
        param.requires_grad_(part_of(name) in parts)


# ================================================================ optimizer


def build_optimizer(model: nn.Module, settings: OptimizerSettings) -> torch.optim.Optimizer:
    """Adam / AdamW over every parameter (frozen ones included, as mmcv does), SPyNet at lr x mult.

    Each group remembers its starting lr as `initial_lr` (the schedule's base lr, as in mmcv).
    """
    main: list[nn.Parameter] = []
    spynet: list[nn.Parameter] = []
    for name, param in model.named_parameters():
        (spynet if part_of(name) == "spynet" else main).append(param)
    groups = [{"params": main, "lr": settings.lr, "initial_lr": settings.lr, "name": "main"}]
    if spynet:
        lr = settings.lr * settings.spynet_lr_mult
        groups.append({"params": spynet, "lr": lr, "initial_lr": lr, "name": "spynet"})
    kind = torch.optim.AdamW if settings.name == "adamw" else torch.optim.Adam
    return kind(groups, lr=settings.lr, betas=settings.betas, weight_decay=settings.weight_decay)


def set_learning_rate(optimizer: torch.optim.Optimizer, iteration: int, scheduler: SchedulerSettings) -> float:
    """Set every group's lr for `iteration`; return the main group's."""
    for group in optimizer.param_groups:
        group["lr"] = learning_rate(iteration, group["initial_lr"], scheduler)
    return optimizer.param_groups[0]["lr"]


# ================================================================ processes


@dataclass(frozen=True)
class Distributed:
    """This process's place: rank / world size from torchrun's environment (1 process without it)."""

    rank: int
    world_size: int
    local_rank: int
    device: torch.device

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def setup_distributed(device: str | torch.device | None = None) -> tuple[Distributed, bool]:
    """Read RANK / WORLD_SIZE / LOCAL_RANK, pick the device (cuda:LOCAL_RANK if there is CUDA) and,
    for several processes, join the process group (nccl on GPUs, gloo on CPUs).

    Returns the placement and whether this call created the process group (then the caller
    destroys it).
    """
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", str(rank)))
    if device is None:
        device = torch.device("cuda", local_rank) if torch.cuda.is_available() else torch.device("cpu")
    device = torch.device(device)
    if device.type == "cuda":
        torch.cuda.set_device(device)
    created = False
    if world_size > 1 and not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
        created = True
    if world_size > 1 and (dist.get_rank(), dist.get_world_size()) != (rank, world_size):
        raise FTVSRError(
            f"process group has rank {dist.get_rank()} of {dist.get_world_size()}, "
            f"environment says {rank} of {world_size}"
        )
    return Distributed(rank, world_size, local_rank, device), created


def wrap_model(model: nn.Module, place: Distributed) -> nn.Module:
    """DDP around `model` for several processes (the model itself for one).

    Every parameter is registered with DDP (requires_grad switched on first) so that parts
    that start training later are averaged too; the parts frozen at any moment are then
    "unused" parameters (as in the published config, find_unused_parameters=True), whose
    gradients stay None and which the optimizer skips.
    """
    if place.world_size == 1:
        return model
    model.requires_grad_(True)
    return DistributedDataParallel(
        model, device_ids=[place.device.index] if place.device.type == "cuda" else None, find_unused_parameters=True
    )


def mean_across_ranks(value: float, place: Distributed) -> float:
    """The mean of a float over all processes (NaN / inf propagate)."""
    if place.world_size == 1:
        return value
    tensor = torch.tensor([value], dtype=torch.float64, device=place.device)
    dist.all_reduce(tensor)
    return tensor.item() / place.world_size


def _seed_everything(seed: int) -> None:
    random.seed(seed)
    # NumPy's global (legacy) RNG is seeded, saved in checkpoints and restored for library code
    # that draws from it; the project's own randomness uses local np.random.Generator objects.
    np.random.seed(seed % 2**32)  # noqa: NPY002
    torch.manual_seed(seed)


def rng_state(place: Distributed) -> dict[str, Any]:
    """This process's RNG states as tensors and plain numbers (loadable with weights_only=True)."""
    np_state = np.random.get_state()  # noqa: NPY002 (the global RNG, see _seed_everything)
    if not isinstance(np_state, tuple):  # a dict only if the global generator were not NumPy's MT19937
        raise FTVSRError(f"NumPy's global random generator is not MT19937: {np_state.get('bit_generator')}")
    _, np_keys, np_pos, np_has_gauss, np_gauss = np_state
    py_version, py_internal, py_gauss = random.getstate()
    return {
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state(place.device) if place.device.type == "cuda" else None,
        "numpy": torch.from_numpy(np_keys.astype(np.int64)),
        "numpy_pos": int(np_pos),
        "numpy_has_gauss": int(np_has_gauss),
        "numpy_gauss": float(np_gauss),
        "python": torch.tensor(py_internal, dtype=torch.int64),
        "python_version": int(py_version),
        "python_gauss": py_gauss,
    }


def set_rng_state(state: Mapping[str, Any], place: Distributed) -> None:
    torch.set_rng_state(state["torch"])
    if place.device.type == "cuda" and state.get("cuda") is not None:
        torch.cuda.set_rng_state(state["cuda"], place.device)
    np.random.set_state(  # noqa: NPY002 (the global RNG, see _seed_everything)
        (
            "MT19937",
            state["numpy"].numpy().astype(np.uint32),
            state["numpy_pos"],
            state["numpy_has_gauss"],
            state["numpy_gauss"],
        )
    )
    random.setstate((state["python_version"], tuple(int(v) for v in state["python"].tolist()), state["python_gauss"]))


def _gather_rng_states(place: Distributed) -> list[dict[str, Any]]:
    mine = rng_state(place)
    if place.world_size == 1:
        return [mine]
    states: list[Any] = [None] * place.world_size
    dist.all_gather_object(states, mine)
    return states


# ================================================================ data


class ClipOrder(Sampler):
    """Which samples each rank trains on, iteration by iteration, from `start` to `end`.

    As DistributedSampler(shuffle=True, drop_last=True) over epochs: epoch e is
    torch.randperm(len(dataset)) seeded with seed + e, cut into global batches of
    batch_size x world_size samples (the remainder dropped); at iteration i, rank r takes
    every world_size-th sample of global batch i, from offset r. The global batch is
    therefore the same set of samples for any split of it over processes, and a pure
    function of (seed, i): a resumed run picks up exactly where the interrupted one was.

    Yields `(index, epoch)` keys; `EpochKeyed` turns them into samples.
    """

    def __init__(self, num_samples: int, batch_size: int, world_size: int, rank: int, seed: int, start: int, end: int):
        self.num_samples, self.batch_size, self.world_size, self.rank = num_samples, batch_size, world_size, rank
        self.seed, self.start, self.end = seed, start, end
        self.batches_per_epoch = num_samples // (batch_size * world_size)
        assert self.batches_per_epoch > 0, "dataset smaller than one global batch"
        self._epoch, self._order = -1, torch.empty(0, dtype=torch.int64)

    def keys(self, iteration: int) -> list[tuple[int, int]]:
        """This rank's `(index, epoch)` samples at `iteration`."""
        epoch, batch = divmod(iteration, self.batches_per_epoch)
        if epoch != self._epoch:
            self._epoch = epoch
            self._order = torch.randperm(self.num_samples, generator=torch.Generator().manual_seed(self.seed + epoch))
        first = batch * self.batch_size * self.world_size + self.rank
        return [(int(self._order[first + i * self.world_size]), epoch) for i in range(self.batch_size)]

    def __iter__(self) -> Iterator[tuple[int, int]]:
        for iteration in range(self.start, self.end):
            yield from self.keys(iteration)

    def __len__(self) -> int:
        return (self.end - self.start) * self.batch_size


class MapDataset(Protocol):
    """What training reads: a map-style dataset (a length, samples by index)."""

    def __len__(self) -> int: ...
    def __getitem__(self, index: int, /) -> Any: ...


class EpochKeyed(Dataset):
    """`dataset[(index, epoch)]` = sample `index` of `epoch`: tells a dataset that draws its
    augmentation from (seed, epoch, index) (`VideoSRTrainDataset(seed=...)`) the epoch, in
    whichever worker process builds the sample."""

    def __init__(self, dataset: MapDataset):
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, key: tuple[int, int]) -> Any:
        index, epoch = key
        if hasattr(self.dataset, "set_epoch"):
            self.dataset.set_epoch(epoch)
        return self.dataset[index]


def training_dataset(
    train_settings: TrainSettings,
    gt_lmdb: str | os.PathLike,
    lq_lmdbs: Mapping[Any, str | os.PathLike],
    data_settings: DataSettings | None = None,
) -> Dataset:
    """The published training samples from packed LMDBs (or set folders): `VideoSRTrainDataset`.

    REDS and the sample: `num_frames` windows with temporal reverse (REDS4 held out of a
    REDS set unless `data.leak_reds4`); Vimeo-90K: the septuplet mirrored twice, no reverse.
    An epoch visits every clip EPOCH_REPEAT times, as the published RepeatDataset.
    Augmentations are drawn from (train.seed, epoch, index).
    """
    from ftvsr.data import datasets

    source = data_settings.source if data_settings is not None else "sample"
    leak_reds4 = data_settings.leak_reds4 if data_settings is not None else False
    options: dict[str, Any] = dict(
        crf_levels=train_settings.crf_levels,
        crf_raw_prob=train_settings.crf_raw_prob,
        crf_per_frame=train_settings.crf_per_frame,
        seed=train_settings.seed,
    )
    if source == "vimeo90k":
        options.update(reverse_prob=0.0, mirror_passes=2)
    gt = datasets.open_frames(gt_lmdb)
    if source == "reds":
        clips, _ = datasets.reds_split(gt.clips(), "REDS4", leak_reds4)
    else:
        clips = sorted(gt.clips())
    return datasets.VideoSRTrainDataset(
        gt,
        dict(lq_lmdbs),
        train_settings.num_frames,
        train_settings.gt_patch_size,
        clips=clips,
        samples_per_epoch=EPOCH_REPEAT * max(len(clips), 1),
        **options,
    )


def _batches(dataset: MapDataset, settings: TrainSettings, place: Distributed, start: int) -> Iterator[dict]:
    order = ClipOrder(
        len(dataset), settings.batch_size, place.world_size, place.rank, settings.seed, start, settings.iterations
    )
    loader = DataLoader(
        EpochKeyed(dataset),
        batch_size=settings.batch_size,
        sampler=order,
        num_workers=settings.num_workers,
        pin_memory=place.device.type == "cuda",
        persistent_workers=False,
    )
    return iter(loader)


def _check_batch(batch: Mapping[str, Any]) -> None:
    lq, gt = batch.get("lq"), batch.get("gt")
    if not (isinstance(lq, torch.Tensor) and isinstance(gt, torch.Tensor) and lq.ndim == 5 and gt.ndim == 5):
        raise FTVSRError("training samples must hold 'lq' (t, 3, h, w) and 'gt' (t, 3, 4h, 4w) tensors")
    n, t, c, h, w = lq.shape
    if gt.shape != (n, t, c, 4 * h, 4 * w):
        raise FTVSRError(f"training batch: gt {tuple(gt.shape)} is not 4x lq {tuple(lq.shape)}")


# ================================================================ run identity and data fingerprint


def run_identity(
    model_settings: ModelSettings,
    train_settings: TrainSettings,
    data_fingerprint: Mapping[str, Any],
    world_size: int,
) -> dict[str, Any]:
    """What makes two trainings the same run: a checkpoint is resumed only by a run of equal identity.

    Every model setting, every train setting except RESUMABLE_CHANGES (the one list of what may
    change on resume), the data (`data_fingerprint`) and the number of processes (each keeps its
    own RNG states). The launcher names its checkpoint folder by `identity_digest` of this, and the
    loop compares it with the checkpoint's, so both agree on "the same run".
    """
    train = {k: v for k, v in train_settings.model_dump(mode="json").items() if k not in RESUMABLE_CHANGES}
    return {
        "model": model_settings.model_dump(mode="json"),
        "train": train,
        "data": json.loads(json.dumps(dict(data_fingerprint), sort_keys=True)),
        "world_size": world_size,
    }


def identity_digest(identity: Mapping[str, Any]) -> str:
    """A short digest of a run identity (the launcher's checkpoint folder name)."""
    return hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()[:12]


def data_fingerprint(
    gt_lmdb: str | os.PathLike,
    lq_lmdbs: Mapping[Any, str | os.PathLike],
    data_settings: DataSettings | None = None,
) -> dict[str, Any]:
    """The training data's identity: a content digest of each LMDB (or set folder) and the data
    settings that change which samples are drawn from them (source, leak_reds4).

    Degradation, compression, the clips and their frames all end up in the LMDBs' content, so a
    change to any of them changes this.
    """
    source = data_settings.source if data_settings is not None else "sample"
    leak_reds4 = data_settings.leak_reds4 if data_settings is not None else False
    return {
        "source": source,
        "leak_reds4": leak_reds4,
        "gt": store_digest(gt_lmdb),
        "lq": {str(level): store_digest(path) for level, path in lq_lmdbs.items()},
    }


def dataset_fingerprint(dataset: Sized) -> dict[str, Any]:
    """The identity of a ready dataset given to `train` (no files to hash): its class and length."""
    return {"dataset": type(dataset).__qualname__, "size": len(dataset)}


def store_digest(path: str | os.PathLike) -> str:
    """sha256 of a training LMDB's content (`meta_info.txt`, then the digest written at pack time,
    `content.sha256`, or else the whole `data.mdb`), or of a set folder's files (names and bytes)."""
    path = Path(path)
    digest = hashlib.sha256()
    if is_lmdb(path):
        meta = path / META_FILE
        digest.update(meta.read_bytes() if meta.is_file() else b"")
        recorded = path / CONTENT_DIGEST_FILE
        if recorded.is_file():
            digest.update(b"recorded:" + recorded.read_bytes().strip())
        else:
            _hash_file(digest, path / DATA_FILE)
    elif path.is_dir():
        for file in sorted(p for p in path.rglob("*") if p.is_file()):
            digest.update(f"{file.relative_to(path).as_posix()}\0".encode())
            _hash_file(digest, file)
    else:
        raise FTVSRError(f"training data not found: {path}")
    return digest.hexdigest()


def _hash_file(digest: Any, path: Path) -> None:
    size = path.stat().st_size
    if size > 1 << 30:
        log.info("hashing %s (%.1f GB) to identify the training data", path, size / 1e9)
    with path.open("rb") as file:
        while chunk := file.read(1 << 22):
            digest.update(chunk)


def _describe_mismatch(expected: Mapping[str, Any], found: Mapping[str, Any]) -> str:
    flat_expected, flat_found = tracking.flatten(expected), tracking.flatten(found)
    keys = sorted(k for k in flat_expected.keys() | flat_found.keys() if flat_expected.get(k) != flat_found.get(k))
    shown = ", ".join(f"{k}: {_short(flat_found.get(k, '-'))} -> {_short(flat_expected.get(k, '-'))}" for k in keys[:4])
    return shown + (f" (+{len(keys) - 4} more)" if len(keys) > 4 else "")


def _short(value: str) -> str:
    return value[:12] if re.fullmatch(r"[0-9a-f]{64}", value) else value


# ================================================================ checkpoints


def checkpoint_path(work_dir: Path, iteration: int) -> Path:
    return work_dir / CHECKPOINT_DIR / f"iter_{iteration:08d}.pt"


def list_checkpoints(work_dir: Path) -> list[Path]:
    """The checkpoints in `work_dir`, newest first."""
    folder = work_dir / CHECKPOINT_DIR
    if not folder.is_dir():
        return []
    found = [p for p in folder.glob("iter_*.pt") if p.stem[len("iter_") :].isdigit()]
    return sorted(found, key=lambda p: int(p.stem[len("iter_") :]), reverse=True)


def load_checkpoint(path: Path) -> dict[str, Any]:
    """Read a training checkpoint (weights_only=True); FTVSRError if damaged or of another kind."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # truncated / corrupt files raise various errors from pickle and zipfile
        raise FTVSRError(f"{path}: unreadable checkpoint ({type(err).__name__}: {err})") from None
    if not isinstance(state, dict) or state.get("format") != CHECKPOINT_FORMAT:
        raise FTVSRError(f"{path}: not a training checkpoint of ftvsr.train")
    if state.get("version") != CHECKPOINT_VERSION:
        raise FTVSRError(f"{path}: checkpoint version {state.get('version')!r}, this code reads {CHECKPOINT_VERSION}")
    return state


def find_checkpoint(work_dir: Path) -> tuple[Path, dict[str, Any]] | None:
    """The newest readable checkpoint in `work_dir`; unreadable ones are reported, and left alone."""
    for path in list_checkpoints(work_dir):
        try:
            return path, load_checkpoint(path)
        except FTVSRError as err:
            log.warning("skipping %s; left in place", err)
    return None


def save_checkpoint(path: Path, state: Mapping[str, Any]) -> None:
    """Write atomically (temporary file, then rename): a failed write leaves the folder as it was.

    A failure to write (a full disk, a lost mount) raises FTVSRError naming `path`.
    """
    try:
        with atomic_path(path) as tmp:
            torch.save(dict(state), tmp)
    except OSError as err:
        raise FTVSRError(f"cannot write checkpoint {path}: {err.strerror or err}") from None


def prune_checkpoints(work_dir: Path, own: list[int], keep: int = KEEP_CHECKPOINTS) -> list[int]:
    """Delete this run's own checkpoints (`own`: their iterations) but the `keep` newest; return
    the iterations kept. Nothing else in the folder is touched: not another run's files, not
    unreadable ones, not higher-numbered leftovers."""
    own = sorted(set(own))
    for iteration in own[:-keep]:
        try:
            checkpoint_path(work_dir, iteration).unlink(missing_ok=True)
        except OSError as err:
            log.warning("could not delete old checkpoint %s: %s", checkpoint_path(work_dir, iteration), err)
    return own[-keep:]


def _check_writable(folder: Path, what: str) -> None:
    try:
        folder.mkdir(parents=True, exist_ok=True)
        probe = folder / f".write-test-{os.getpid()}"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as err:
        raise FTVSRError(f"{what} {folder} is not writable ({err.strerror or err})") from None


@contextmanager
def _writing(what: str, path: Path) -> Iterator[None]:
    """Turn an OSError while writing `path` (a full disk...) into a one-line FTVSRError."""
    try:
        yield
    except OSError as err:
        raise FTVSRError(f"cannot write {what} {path}: {err.strerror or err}") from None


# ================================================================ validation and logs


def validate_clip(
    model: nn.Module, lq_dir: str | os.PathLike, gt_dir: str | os.PathLike, device: torch.device
) -> dict[str, float]:
    """PSNR (RGB, no crop, as the paper's REDS tables) of the model on one clip folder pair, by the
    evaluation's own `super_resolve` (one pass over the clip) and `psnr`."""
    from ftvsr.inference import super_resolve
    from ftvsr.io.frames import read_clip
    from ftvsr.metrics import psnr

    lq, gt = read_clip(lq_dir), read_clip(gt_dir)
    out = super_resolve(model, lq, device=device)
    if out.shape != gt.shape:
        raise FTVSRError(f"validation clip {gt_dir}: output {out.shape} does not match GT {gt.shape}")
    return {"psnr": float(np.mean([psnr(g, o) for g, o in zip(gt, out, strict=True)]))}


def _run_validation(model: nn.Module, val: Validation, device: torch.device) -> dict[str, float]:
    model.eval()
    try:
        with torch.no_grad():
            metrics = val(model) if callable(val) else validate_clip(model, val[0], val[1], device)
    finally:
        model.train()
    return {f"val_{k}": float(v) for k, v in metrics.items()}


def loss_windows(history: list[tuple[float, float]], log_every: int) -> list[tuple[int, float, float]]:
    """(step, mean loss, lr) for each `log_every` window of the (loss, lr) history.

    `step` counts iterations from 1 (the window's last); the last window may be shorter.
    Non-finite losses (skipped updates) are left out of the mean; a window with only those is NaN.
    """
    rows = []
    for first in range(0, len(history), log_every):
        window = history[first : first + log_every]
        rows.append((first + len(window), _finite_mean([loss for loss, _ in window]), window[-1][1]))
    return rows


def _finite_mean(values: list[float]) -> float:
    finite = [v for v in values if math.isfinite(v)]
    return sum(finite) / len(finite) if finite else float("nan")


def _write_loss_csv(path: Path, rows: list[tuple[int, float, float]]) -> None:
    lines = ["step,loss,lr"] + [f"{step},{loss:.8g},{lr:.8g}" for step, loss, lr in rows]
    write_text_atomic(path, "\n".join(lines) + "\n")


class Tracker:
    """The training's MLflow run (rank 0): started, or reopened on resume.

    A reopened run may already hold steps past the checkpoint (logged by the interrupted process
    before it died); those steps are not logged again, so every step appears once per metric.
    """

    def __init__(self, mlflow: Any, run_id: str, reopened: bool):
        self.mlflow, self.run_id, self.reopened = mlflow, run_id, reopened
        self._logged_through: dict[str, int] = {}

    @classmethod
    def start(
        cls,
        settings: MlflowSettings,
        run_id: str | None,
        run_name: str | None,
        params: Mapping[str, str],
        tags: Mapping[str, str],
    ) -> Tracker:
        import mlflow

        experiment_id = tracking.configure(settings)
        system_metrics = tracking.system_metrics_available()
        if run_id is not None:
            try:
                mlflow.get_run(run_id)
            except mlflow.exceptions.MlflowException:
                log.warning(
                    "MLflow run %s of the checkpoint is not in %s: starting a new run", run_id, settings.tracking_uri
                )
                run_id = None
        if run_id is None:  # the same training run before (its checkpoints deleted): the same run again
            identity = tags.get(tracking.RUN_IDENTITY_TAG)
            earlier = (
                tracking.find_run(mlflow.MlflowClient(), experiment_id, {tracking.RUN_IDENTITY_TAG: identity})
                if identity
                else None
            )
            run_id = earlier.info.run_id if earlier is not None else None
        if run_id is not None:
            mlflow.start_run(run_id=run_id, log_system_metrics=system_metrics)
            return cls(mlflow, run_id, reopened=True)
        run = mlflow.start_run(
            experiment_id=experiment_id, run_name=run_name, tags=dict(tags), log_system_metrics=system_metrics
        )
        mlflow.log_params(dict(params))
        return cls(mlflow, run.info.run_id, reopened=False)

    def _last_step(self, key: str) -> int:
        if key not in self._logged_through:
            history = self.mlflow.MlflowClient().get_metric_history(self.run_id, key) if self.reopened else []
            self._logged_through[key] = max((m.step for m in history), default=-1)
        return self._logged_through[key]

    def log(self, metrics: Mapping[str, float], step: int) -> None:
        new = {k: v for k, v in metrics.items() if step > self._last_step(k)}
        if new:
            self.mlflow.log_metrics(new, step=step)
            self._logged_through.update(dict.fromkeys(new, step))

    def log_history(self, rows: list[tuple[int, float, float]]) -> None:
        """The (step, loss, lr) windows so far, those the run does not hold yet, in batches."""
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        metrics = [
            Metric(key, value, now, step)
            for step, loss, lr in rows
            for key, value in (("loss", loss), ("lr", lr))
            if step > self._last_step(key) and math.isfinite(value)
        ]
        client = self.mlflow.MlflowClient()
        for first in range(0, len(metrics), 1000):  # MLflow takes at most 1000 metrics a request
            client.log_batch(self.run_id, metrics=metrics[first : first + 1000])
        for key in ("loss", "lr"):
            self._logged_through[key] = max([self._last_step(key), *(row[0] for row in rows)])

    def log_outputs(self, result: TrainResult, model: FTVSR, registered_model: str | None) -> None:
        """The final loss, the loss curve, the checkpoint file and the model as an MLflow Model
        (registered as `registered_model`), and the file's hash, by which evaluations find this run."""
        sha = tracking.file_sha256(result.model_path)
        self.log({"final_loss": result.final_loss}, result.iterations)
        self.mlflow.set_tag(tracking.MODEL_SHA_TAG, sha)
        self.mlflow.log_artifact(str(result.model_path), artifact_path="checkpoint")
        self.mlflow.log_dict(dict(model.config), "checkpoint/config.json")
        self.mlflow.log_artifact(str(result.loss_csv))
        if registered_model:
            tracking.log_model(model, registered_name=registered_model, model_sha256=sha)

    def end(self, status: str = "FINISHED") -> None:
        self.mlflow.end_run(status=status)


# ================================================================ the loop


@dataclass
class RunState:
    """What one iteration hands the next; all of it but `phase` goes into a checkpoint."""

    iteration: int = 0  # iterations done: the next one to run
    history: list[tuple[float, float]] = field(default_factory=list)  # (loss, lr) of each iteration
    nonfinite_total: int = 0  # updates skipped for a non-finite loss, in all
    nonfinite_run: int = 0  # ... in a row, up to now
    run_id: str | None = None  # MLflow
    checkpoints: list[int] = field(default_factory=list)  # this run's checkpoints on disk (iterations)
    phase: frozenset[str] | None = None  # the trainable parts now (re-applied after a resume)


def train_step(
    net: nn.Module,
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    batch: Mapping[str, torch.Tensor],
    settings: TrainSettings,
    place: Distributed,
    state: RunState,
) -> float:
    """Iteration `state.iteration`: phase, lr, forward and backward, the NaN guard, the update.

    Returns the loss (mean over processes). A non-finite loss or gradient skips the update (weights
    and optimizer state stay as they were); `max_nonfinite_steps` of them in a row raise.
    """
    iteration = state.iteration
    parts = trainable_parts(iteration, settings)
    if parts != state.phase:
        apply_phase(model, parts)
        state.phase = parts
        if place.is_main:
            log.info("iteration %d: training %s", iteration, ", ".join(p for p in PARTS if p in parts))
    lr = set_learning_rate(optimizer, iteration, settings.scheduler)

    lq = batch["lq"].to(place.device, non_blocking=True)
    gt = batch["gt"].to(place.device, non_blocking=True)
    with autocast(place.device, settings.precision):
        output = net(lq)
    loss = charbonnier_loss(output.float(), gt, settings.charbonnier_eps)
    loss.backward()  # always (also for a NaN loss): DDP expects every forward to be followed by one
    loss_value = mean_across_ranks(loss.item(), place)
    finite = math.isfinite(loss_value)
    if finite and settings.grad_clip is not None:
        trainable = [p for p in model.parameters() if p.grad is not None]
        finite = math.isfinite(float(torch.nn.utils.clip_grad_norm_(trainable, settings.grad_clip)))
    if finite:
        optimizer.step()
        state.nonfinite_run = 0
    else:
        state.nonfinite_run += 1
        state.nonfinite_total += 1
        if place.is_main:
            log.warning(
                "iteration %d: non-finite loss %s (or gradient), update skipped (%d in a row)",
                iteration,
                loss_value,
                state.nonfinite_run,
            )
        if state.nonfinite_run >= settings.max_nonfinite_steps:
            raise FTVSRError(
                f"training diverged: {state.nonfinite_run} iterations in a row with a non-finite "
                f"loss (up to iteration {iteration}); lower train.optimizer.lr or set "
                f"train.grad_clip (train.max_nonfinite_steps={settings.max_nonfinite_steps})"
            )
    optimizer.zero_grad(set_to_none=True)
    state.history.append((loss_value, lr))
    state.iteration += 1
    return loss_value


def autocast(device: torch.device, precision: str) -> contextlib.AbstractContextManager:
    """bfloat16 autocast for `precision` "bf16" (weights, gradients and the loss stay float32)."""
    if precision == "bf16":
        return torch.autocast(device_type=device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()


def _resume(
    work_dir: Path,
    identity: Mapping[str, Any],
    settings: TrainSettings,
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    place: Distributed,
) -> tuple[RunState, list[dict[str, Any]] | None]:
    """Load the newest readable checkpoint of `work_dir` into model and optimizer (rank 0 chooses,
    every rank loads it); return the run state and every rank's RNG states (None: a fresh run).

    A checkpoint of another run identity (settings, data or processes) is an error naming what differs.
    """
    resumed = None
    if place.is_main:
        found = find_checkpoint(work_dir)
        resumed = str(found[0]) if found else None
    if place.world_size > 1:
        choice = [resumed]
        dist.broadcast_object_list(choice, src=0)
        resumed = choice[0]
    if resumed is None:
        return RunState(), None
    checkpoint = load_checkpoint(Path(resumed))
    found_identity = json.loads(checkpoint["identity"])
    if found_identity != identity:
        raise FTVSRError(
            f"{resumed} was written by another run ({_describe_mismatch(identity, found_identity)}); "
            f"restore those settings and data, or delete {work_dir} to start afresh"
        )
    if checkpoint["iteration"] > settings.iterations:
        raise FTVSRError(
            f"{resumed} is at iteration {checkpoint['iteration']}, past train.iterations "
            f"({settings.iterations}); delete {work_dir} to start afresh"
        )
    model.load_state_dict(checkpoint["model"])
    optimizer.load_state_dict(checkpoint["optimizer"])
    state = RunState(
        iteration=int(checkpoint["iteration"]),
        history=[(float(loss), float(lr)) for loss, lr in checkpoint["history"].tolist()],
        nonfinite_total=int(checkpoint["nonfinite_total"]),
        nonfinite_run=int(checkpoint["nonfinite_run"]),
        run_id=checkpoint.get("mlflow_run_id"),
        checkpoints=[int(i) for i in checkpoint["checkpoints"] if checkpoint_path(work_dir, int(i)).is_file()],
    )
    if place.is_main:
        log.info("resuming from %s (iteration %d of %d)", resumed, state.iteration, settings.iterations)
    return state, checkpoint["rng"]


def _write_checkpoint(
    work_dir: Path,
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    settings: TrainSettings,
    identity: Mapping[str, Any],
    state: RunState,
    place: Distributed,
) -> None:
    """Rank 0 writes the checkpoint of `state.iteration` (with every rank's RNG states), then prunes
    the run's own older ones; a failed write stops every rank with its error."""
    rng_states = _gather_rng_states(place)
    error = None
    if place.is_main:
        kept = sorted({*state.checkpoints, state.iteration})[-KEEP_CHECKPOINTS:]
        try:
            save_checkpoint(
                checkpoint_path(work_dir, state.iteration),
                {
                    "format": CHECKPOINT_FORMAT,
                    "version": CHECKPOINT_VERSION,
                    "iteration": state.iteration,
                    "identity": json.dumps(identity, sort_keys=True),
                    "model": model.state_dict(),
                    "optimizer": optimizer.state_dict(),
                    # a record of the schedule (the lr of iteration i is a function of i and these)
                    "scheduler": {
                        "name": settings.scheduler.name,
                        "base_lrs": [g["initial_lr"] for g in optimizer.param_groups],
                        **settings.scheduler.model_dump(mode="json", exclude={"name"}),
                    },
                    "rng": rng_states,
                    "history": torch.tensor(state.history, dtype=torch.float64).reshape(-1, 2),
                    "nonfinite_total": state.nonfinite_total,
                    "nonfinite_run": state.nonfinite_run,
                    "mlflow_run_id": state.run_id,
                    "checkpoints": kept,
                },
            )
            state.checkpoints = prune_checkpoints(work_dir, [*state.checkpoints, state.iteration])
        except FTVSRError as err:
            error = str(err)
    if place.world_size > 1:
        box = [error]
        dist.broadcast_object_list(box, src=0)
        error = box[0]
    if error is not None:
        raise FTVSRError(error)


def _due(step: int, every: int, settings: TrainSettings) -> bool:
    return step % every == 0 or step == settings.iterations


def _training_data(
    settings: TrainSettings,
    place: Distributed,
    gt_lmdb: str | os.PathLike | None,
    lq_lmdbs: Mapping[Any, str | os.PathLike] | None,
    data_settings: DataSettings | None,
    dataset: Dataset | None,
    data_id: Mapping[str, Any] | None,
) -> tuple[MapDataset, Mapping[str, Any]]:
    """The training set (built from the LMDBs unless given), checked, and its fingerprint (hashed
    by rank 0 unless given, the same on every rank)."""
    if dataset is None:
        assert gt_lmdb is not None and lq_lmdbs is not None  # checked by `train`
        dataset = training_dataset(settings, gt_lmdb, lq_lmdbs, data_settings)
    if not isinstance(dataset, Sized):
        raise FTVSRError(f"train: the dataset must be map-style, with a length; got {type(dataset).__name__}")
    global_batch = settings.batch_size * place.world_size
    if len(dataset) < global_batch:
        raise FTVSRError(
            f"the training set has {len(dataset)} samples, fewer than one global batch "
            f"({settings.batch_size} per process x {place.world_size} processes)"
        )
    if data_id is None and place.is_main:
        if gt_lmdb is not None and lq_lmdbs is not None:
            data_id = data_fingerprint(gt_lmdb, lq_lmdbs, data_settings)
        else:
            data_id = dataset_fingerprint(dataset)
    if place.world_size > 1:
        box = [data_id]
        dist.broadcast_object_list(box, src=0)
        data_id = box[0]
    assert data_id is not None
    return dataset, data_id


def train(
    model_settings: ModelSettings,
    train_settings: TrainSettings,
    *,
    gt_lmdb: str | os.PathLike | None = None,
    lq_lmdbs: Mapping[Any, str | os.PathLike] | None = None,
    out_model: str | os.PathLike,
    work_dir: str | os.PathLike,
    data_settings: DataSettings | None = None,
    dataset: Dataset | None = None,
    mlflow_settings: MlflowSettings | None = None,
    run_name: str | None = None,
    registered_model: str | None = None,
    extra_params: Mapping[str, Any] | None = None,
    extra_tags: Mapping[str, Any] | None = None,
    val: Validation | None = None,
    device: str | torch.device | None = None,
    progress: bool = True,
    data_id: Mapping[str, Any] | None = None,
) -> TrainResult:
    """Train FTVSR(**model_settings) with the published recipe; resume from `work_dir` if it holds
    a checkpoint of the same run (`run_identity`: settings, data and processes).

    Data: `gt_lmdb` and `lq_lmdbs` (level "raw" / CRF -> LMDB or set folder) through
    `training_dataset`, or a ready `dataset` whose samples are {"lq": (t, 3, h, w),
    "gt": (t, 3, 4h, 4w)} float in [0, 1]. `data_id`: the data's fingerprint if the caller has
    computed it already (default: `data_fingerprint` of the LMDBs, `dataset_fingerprint` of a
    dataset). Validation: a callable model -> {name: value} or an (LR clip folder, GT clip
    folder) pair, run on rank 0 every `eval_every` iterations and at the end. Runs as one
    process or under torchrun (see module doc).
    """
    settings = train_settings
    out_model, work_dir = Path(out_model), Path(work_dir)
    if (dataset is None) == (gt_lmdb is None or lq_lmdbs is None):
        raise FTVSRError("train: give either gt_lmdb and lq_lmdbs, or a dataset")
    place, owns_group = setup_distributed(device)
    tracker: Tracker | None = None
    cleanup = ExitStack()  # closed in `finally`
    try:
        if owns_group:
            cleanup.callback(dist.destroy_process_group)
        cleanup.enter_context(torch_threads(settings.threads))

        # -------------------------------------------------- before anything runs: can it finish?
        _check_writable(work_dir / CHECKPOINT_DIR, "resume directory")
        _check_writable(out_model.parent, "model output folder")
        samples, data_id = _training_data(settings, place, gt_lmdb, lq_lmdbs, data_settings, dataset, data_id)
        identity = run_identity(model_settings, settings, data_id, place.world_size)

        # -------------------------------------------------- model, optimizer, resume (same on every rank)
        torch.manual_seed(settings.seed)
        model = FTVSR(**model_settings.model_dump())
        if settings.spynet_weights:
            load_spynet_weights(model.spynet, settings.spynet_weights)
        model.to(place.device).train()
        optimizer = build_optimizer(model, settings.optimizer)
        _seed_everything(settings.seed + place.rank)
        state, rng_states = _resume(work_dir, identity, settings, model, optimizer, place)
        start = state.iteration
        net = wrap_model(model, place)

        # -------------------------------------------------- tracking (rank 0)
        if place.is_main and mlflow_settings is not None:
            params = tracking.flatten(
                {"model": model_settings.model_dump(mode="json"), "train": settings.model_dump(mode="json")}
            )
            params.update(tracking.flatten({**(extra_params or {}), "world_size": place.world_size}))
            data_paths = [gt_lmdb, *lq_lmdbs.values()] if gt_lmdb is not None and lq_lmdbs is not None else []
            tags = tracking.run_tags(
                "train", data_paths, {**(extra_tags or {}), tracking.RUN_IDENTITY_TAG: identity_digest(identity)}
            )
            tracker = Tracker.start(mlflow_settings, state.run_id, run_name, params, tags)
            state.run_id = tracker.run_id
            if start > 0:  # a resumed training in a run that may lack its curves so far (e.g. a new store)
                tracker.log_history(loss_windows(state.history, settings.log_every))

        # -------------------------------------------------- the loop
        batches = _batches(samples, settings, place, start)
        if rng_states is not None:  # last, so that nothing above draws from the restored generators
            set_rng_state(rng_states[place.rank], place)
        bar = cleanup.enter_context(
            tqdm(
                total=settings.iterations,
                initial=start,
                desc="train",
                dynamic_ncols=True,
                disable=not (progress and place.is_main),
            )
        )
        val_metrics: dict[str, float] = {}
        started = time.perf_counter()
        while state.iteration < settings.iterations:
            batch = next(batches)
            if state.iteration == start:
                _check_batch(batch)
            loss = train_step(net, model, optimizer, batch, settings, place, state)
            step = state.iteration  # iterations done, counted from 1: what logs and checkpoints name
            bar.update(1)
            if place.is_main:
                bar.set_postfix(loss=f"{loss:.4g}", lr=f"{state.history[-1][1]:.3g}", refresh=False)
            if tracker is not None and _due(step, settings.log_every, settings):
                window = state.history[(step - 1) // settings.log_every * settings.log_every :]
                seconds = (time.perf_counter() - started) / (step - start)
                metrics = {"loss": _finite_mean([v for v, _ in window]), "lr": window[-1][1]}
                tracker.log({**metrics, "seconds_per_iteration": seconds}, step)
            if val is not None and place.is_main and _due(step, settings.eval_every, settings):
                val_metrics = _run_validation(model, val, place.device)
                log.info("iteration %d: %s", step - 1, val_metrics)
                if tracker is not None:
                    tracker.log(val_metrics, step)
            if _due(step, settings.checkpoint_every, settings):
                _write_checkpoint(work_dir, model, optimizer, settings, identity, state, place)
        bar.close()
        ran = settings.iterations - start
        seconds_per_iteration = (time.perf_counter() - started) / ran if ran > 0 else None

        # -------------------------------------------------- outputs (rank 0)
        rows = loss_windows(state.history, settings.log_every)
        result = TrainResult(
            out_model,
            loss_csv_path(out_model),
            state.run_id if place.is_main else None,
            settings.iterations,
            start,
            rows[-1][1] if rows else float("nan"),
            state.nonfinite_total,
            seconds_per_iteration,
            val_metrics,
        )
        if place.is_main:
            _write_outputs(result, rows, model, place.world_size)
            if tracker is not None:
                tracker.log_outputs(result, model, registered_model)
        if place.world_size > 1:
            dist.barrier()  # the outputs exist when any rank returns
        if tracker is not None:
            tracker.end()
            tracker = None
        return result
    finally:
        if tracker is not None:  # an exception: the MLflow run failed
            tracker.end(status="FAILED")
        cleanup.close()


def _write_outputs(
    result: TrainResult,
    rows: list[tuple[int, float, float]],
    model: FTVSR,
    world_size: int,
) -> None:
    """The model and its loss curve (rank 0); a failed write is a one-line FTVSRError."""
    with _writing("model", result.model_path):
        save_model(
            model,
            result.model_path,
            metadata={
                "iterations": result.iterations,
                "final_loss": result.final_loss,
                "world_size": world_size,
                # no MLflow run id: the file's bytes must repeat for identical runs (DVC hashes it);
                # the run records the file's hash instead
            },
        )
    with _writing("loss curve", result.loss_csv):
        _write_loss_csv(result.loss_csv, rows)


# ================================================================ entry point


def _level(text: str) -> str | int:
    return text if text == "raw" else int(text)


def _parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m ftvsr.train",
        description=(
            "Train FTVSR with the settings of params.yaml; under torchrun, one process per GPU (or CPU worker)."
        ),
    )
    parser.add_argument("--params", default="params.yaml", help="the params file (default: params.yaml)")
    parser.add_argument("--gt-lmdb", required=True, help="the GT (HR) LMDB or set folder")
    parser.add_argument(
        "--lq-lmdb",
        action="append",
        required=True,
        metavar="LEVEL=PATH",
        help="an LQ LMDB per compression level: raw=PATH, 15=PATH, ... (repeat)",
    )
    parser.add_argument("--out-model", required=True, help="where the trained model goes")
    parser.add_argument("--work-dir", required=True, help="checkpoints (resumed from if present)")
    parser.add_argument("--run-name", help="MLflow run name (default: train-<profile>)")
    parser.add_argument("--no-mlflow", action="store_true", help="do not track the run")
    parser.add_argument("--val-lq", help="an LR clip folder to validate on")
    parser.add_argument("--val-gt", help="its GT clip folder")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = _parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        params = load_params(args.params)
        lq_lmdbs = {}
        for item in args.lq_lmdb:
            level, sep, path = item.partition("=")
            if not sep or not path:
                raise FTVSRError(f"--lq-lmdb expects LEVEL=PATH, got {item!r}")
            try:
                lq_lmdbs[_level(level)] = path
            except ValueError:
                raise FTVSRError(f"--lq-lmdb level must be 'raw' or an integer CRF, got {level!r}") from None
        if (args.val_lq is None) != (args.val_gt is None):
            raise FTVSRError("give both --val-lq and --val-gt, or neither")
        result = train(
            params.model,
            params.train,
            gt_lmdb=args.gt_lmdb,
            lq_lmdbs=lq_lmdbs,
            out_model=args.out_model,
            work_dir=args.work_dir,
            data_settings=params.data,
            mlflow_settings=None if args.no_mlflow else params.mlflow,
            run_name=args.run_name or tracking.train_run_name(params.profile),
            registered_model=tracking.registered_model_name(params.profile),
            extra_params={"profile": params.profile, "data": params.data.model_dump(mode="json")},
            extra_tags={"profile": params.profile},
            val=(args.val_lq, args.val_gt) if args.val_lq else None,
            progress=not args.no_progress,
        )
    except FTVSRError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    if int(os.environ.get("RANK", "0")) == 0:
        print(f"trained {result.iterations} iterations, final loss {result.final_loss:.6g}: {result.model_path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
