"""Torch Datasets for training and testing, over frame folders or LMDB alike.

A *frame source* is anything with `clips() -> {clip: [frame, ...]}` and
`read("clip/frame") -> uint8 (h, w, 3)`: `FolderFrames` (a set folder of clip folders) and
`ftvsr.io.lmdb_store.LmdbFrames` (a packed LMDB). `open_frames(path)` picks the right one.

Training samples follow the published FTVSR pipeline (configs/FTVSR_reds4.py and
mmedit/datasets in the published code):

1. a window of `num_frames` consecutive frames of one clip, random start
   (`GenerateSegmentIndices`, interval 1);
2. the LQ version the window is read from, drawn by `draw_crf_level`: with probability
   `crf_raw_prob` (0.5) uncompressed, otherwise uniformly one of `crf_levels`
   (raw, 15, 25, 35) -- raw again included, so 62.5 % raw and 12.5 % per CRF
   (`random_crf_aug` / `folder_change1` in `mmedit/datasets/base_sr_dataset.py`). For REDS
   the published code swaps the LQ *folder* of the whole window, so the window has one
   level; `crf_per_frame=True` draws per frame instead, as it happens for Vimeo-90K (there
   the paths are already per-frame when the swap runs);
3. temporal reverse with probability 0.5 (`TemporalReverse`; REDS only);
4. paired random crop: a `gt_patch_size` GT patch (256) and the LQ patch `scale` times
   smaller at the matching place (`PairedRandomCrop`);
5. horizontal flip, vertical flip, H/W transpose, each with probability 0.5, applied to
   every frame of LQ and GT alike (`Flip`, `Flip`, `RandomTransposeHW`);
6. Vimeo-90K only: the 7 frames mirrored twice, 7 -> 14 -> 28 (`MirrorSequence` x2).

Randomness: with `seed=None`, each sample draws a fresh seed from torch's global generator
(`torch.manual_seed` in the main process; in DataLoader workers torch seeds it per worker
from the loader's base seed, so `DataLoader(generator=...)` makes a run repeatable);
with an integer `seed`, sample `i` of epoch `e` (`set_epoch`) is a fixed function of
`(seed, e, i)`, whatever the worker that builds it.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Literal, Protocol

import numpy as np
import torch
from torch.utils.data import Dataset

from ftvsr.data.sources import vimeo_clip_name
from ftvsr.data.splits import REDS4_CLIPS, reds_split  # re-exported: the datasets API
from ftvsr.errors import FTVSRError
from ftvsr.io.frames import list_clips, list_frames, read_frame
from ftvsr.io.lmdb_store import LmdbFrames, is_lmdb

Level = str | int  # "raw" or a CRF value
RAW = "raw"

# REDS: clips 000..269 (the 30 validation clips renamed 240..269, see sources.py).
REDS_NUM_FRAMES = 40  # num_input_frames of the published REDS training config
VIMEO_NUM_FRAMES = 7
VID4_CLIPS = ("calendar", "city", "foliage", "walk")


class FrameSource(Protocol):
    """Where frames come from: a set folder or an LMDB."""

    def clips(self) -> dict[str, list[str]]: ...

    def read(self, key: str) -> np.ndarray: ...


class FolderFrames:
    """A set folder (`SET/<clip>/<frame>.png`) behind the `LmdbFrames` interface.

    The folder is listed once, here; frame names are file names without their extension,
    sorted as text (as `LmdbFrames` sorts them).
    """

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        self._files: dict[str, dict[str, str]] = {}
        for clip in list_clips(self.path):
            frames = {}
            for file in list_frames(self.path / clip):
                if file.stem in frames:
                    raise FTVSRError(f"{file}: two frames named {file.stem!r} in one clip")
                frames[file.stem] = file.name
            # ordered by name without extension, as LmdbFrames orders its keys
            self._files[clip] = dict(sorted(frames.items()))

    def keys(self) -> list[str]:
        return [f"{clip}/{frame}" for clip, frames in self._files.items() for frame in frames]

    def clips(self) -> dict[str, list[str]]:
        return {clip: list(frames) for clip, frames in self._files.items()}

    def read(self, key: str) -> np.ndarray:
        clip, _, frame = key.rpartition("/")
        try:
            name = self._files[clip][frame]
        except KeyError:
            raise FTVSRError(f"frame {key!r} not in set folder {self.path}") from None
        return read_frame(self.path / clip / name)

    def __len__(self) -> int:
        return sum(len(frames) for frames in self._files.values())

    def __repr__(self) -> str:
        return f"FolderFrames({str(self.path)!r}, {len(self._files)} clips)"


def open_frames(source: str | os.PathLike | FrameSource) -> FrameSource:
    """A path -> `LmdbFrames` if it holds an LMDB, else `FolderFrames`; a source is returned as is."""
    if isinstance(source, (str, os.PathLike)):
        return LmdbFrames(source) if is_lmdb(source) else FolderFrames(source)
    if not (hasattr(source, "clips") and hasattr(source, "read")):
        raise FTVSRError(f"not a frame source or a path: {source!r}")
    return source


def level_label(level: Level) -> str:
    """`"raw"` or the CRF as text: the `crf` field of a sample (collates into a list of str)."""
    if isinstance(level, str) and level.lower() == RAW:
        return RAW
    try:
        return str(int(level))
    except (TypeError, ValueError):
        raise FTVSRError(f"a compression level is 'raw' or an integer CRF, got {level!r}") from None


def draw_crf_level(rng: np.random.Generator, levels: Sequence[str], raw_prob: float) -> str:
    """The published CRF mix: raw with probability `raw_prob`, else uniform over `levels`.

    `levels` contains raw as well, so with (0.5, [raw, 15, 25, 35]) raw comes 62.5 % of
    the time and each CRF 12.5 %.
    """
    if rng.random() < raw_prob:
        return RAW
    return levels[int(rng.integers(len(levels)))]


def _to_tensor(frames: np.ndarray) -> torch.Tensor:
    """uint8 (t, h, w, 3) -> float32 (t, 3, h, w) in [0, 1]."""
    # copy(): flips leave negative strides, which torch cannot wrap (even on size-1 axes)
    return torch.from_numpy(frames.transpose(0, 3, 1, 2).copy()).float().div_(255.0)


def _read_window(sources: Sequence[FrameSource], clip: str, frames: Sequence[str], what: str) -> np.ndarray:
    """Frame `i` of `frames` from `sources[i]`, stacked into uint8 (t, h, w, 3)."""
    images = [source.read(f"{clip}/{frame}") for source, frame in zip(sources, frames, strict=True)]
    first = images[0].shape
    for frame, image in zip(frames, images, strict=True):
        if image.shape != first:
            raise FTVSRError(
                f"{what} frame {clip}/{frame} is {image.shape[1]}x{image.shape[0]}, "
                f"{clip}/{frames[0]} is {first[1]}x{first[0]}: one clip, one size"
            )
    return np.stack(images)


def _check_scale(lq: np.ndarray, gt: np.ndarray, scale: int, clip: str) -> None:
    h, w = lq.shape[1:3]
    if gt.shape[1:3] != (h * scale, w * scale):
        raise FTVSRError(
            f"clip {clip}: GT frames are {gt.shape[2]}x{gt.shape[1]}, expected "
            f"{scale} x the LQ {w}x{h} = {w * scale}x{h * scale}"
        )


def _paired_clips(
    gt: FrameSource, lq: Mapping[str, FrameSource], clips: Sequence[str] | None
) -> tuple[list[str], dict[str, list[str]]]:
    """The clips to use and their frames, checked present with the same frames everywhere."""
    gt_clips = gt.clips()
    chosen = sorted(gt_clips) if clips is None else list(clips)
    if not chosen:
        raise FTVSRError(f"no clips to use in {gt!r}")
    lq_clips = {label: source.clips() for label, source in lq.items()}
    frames = {}
    for clip in chosen:
        if clip not in gt_clips:
            raise FTVSRError(f"clip {clip!r} is not in the GT source {gt!r}")
        for label, listing in lq_clips.items():
            if clip not in listing:
                raise FTVSRError(f"clip {clip!r} is missing from the LQ source for {label} ({lq[label]!r})")
            if listing[clip] != gt_clips[clip]:
                raise FTVSRError(
                    f"clip {clip!r}: the LQ frames for {label} ({len(listing[clip])}) "
                    f"do not match the GT frames ({len(gt_clips[clip])}) by name"
                )
        frames[clip] = gt_clips[clip]
    return chosen, frames


class VideoSRTrainDataset(Dataset):
    """Training windows with the published augmentation (see the module docstring).

    Args:
        gt: GT frame source or path (set folder / LMDB).
        lq: compression level (`"raw"`, 15, 25, 35...) -> LQ source or path, same clips and
            frame names as `gt`, frames `scale` times smaller. Every level that can be drawn
            must be present.
        num_frames: window length `t` (REDS 40, Vimeo-90K 7).
        gt_patch_size: side of the GT crop (256); a multiple of `scale`.
        clips: the clips to sample from (default: every GT clip).
        crf_levels / crf_raw_prob: the CRF mix (see `draw_crf_level`).
        crf_per_frame: draw the level per frame instead of per window.
        reverse_prob, flip_prob, transpose_prob: augmentation probabilities (0.5 each).
        mirror_passes: append the reversed window this many times (Vimeo-90K: 2).
        samples_per_epoch: `len()`; default one sample per clip. Sample `i` uses clip
            `i % len(clips)`, so a DataLoader runs a bounded number of iterations.
        seed: `None` (torch's generator) or an int for samples fixed by `(seed, epoch, i)`.

    A sample: `{"lq": float32 (t, 3, p, p) in [0, 1], "gt": float32 (t, 3, scale*p,
    scale*p), "crf": "raw" | "15" | ... (per-frame levels joined by ","), "clip": name}`
    with `p = gt_patch_size // scale` and `t = num_frames * 2**mirror_passes`.
    """

    def __init__(
        self,
        gt: str | os.PathLike | FrameSource,
        lq: Mapping[Level, str | os.PathLike | FrameSource],
        num_frames: int,
        gt_patch_size: int = 256,
        scale: int = 4,
        *,
        clips: Sequence[str] | None = None,
        crf_levels: Sequence[Level] = (RAW, 15, 25, 35),
        crf_raw_prob: float = 0.5,
        crf_per_frame: bool = False,
        reverse_prob: float = 0.5,
        flip_prob: float = 0.5,
        transpose_prob: float = 0.5,
        mirror_passes: int = 0,
        samples_per_epoch: int | None = None,
        seed: int | None = None,
    ):
        if num_frames < 1:
            raise FTVSRError(f"num_frames must be >= 1, got {num_frames}")
        if scale < 1 or gt_patch_size < scale or gt_patch_size % scale:
            raise FTVSRError(f"gt_patch_size must be a positive multiple of scale ({scale}), got {gt_patch_size}")
        for name, p in (
            ("crf_raw_prob", crf_raw_prob),
            ("reverse_prob", reverse_prob),
            ("flip_prob", flip_prob),
            ("transpose_prob", transpose_prob),
        ):
            if not 0.0 <= p <= 1.0:
                raise FTVSRError(f"{name} must be in [0, 1], got {p}")
        if not crf_levels and crf_raw_prob < 1.0:
            raise FTVSRError("crf_levels is empty")
        if mirror_passes < 0:
            raise FTVSRError(f"mirror_passes must be >= 0, got {mirror_passes}")
        if samples_per_epoch is not None and samples_per_epoch < 1:
            raise FTVSRError(f"samples_per_epoch must be >= 1, got {samples_per_epoch}")

        self.levels = [level_label(level) for level in crf_levels]
        lq_sources = {level_label(level): open_frames(source) for level, source in lq.items()}
        needed = set(self.levels if crf_raw_prob < 1.0 else ()) | ({RAW} if crf_raw_prob > 0 else set())
        missing = sorted(needed - set(lq_sources))
        if missing:
            raise FTVSRError(f"no LQ source for compression level(s) {missing}: given {sorted(lq_sources)}")
        self.gt = open_frames(gt)
        self.lq = {label: lq_sources[label] for label in sorted(needed)}
        self.clips, self._frames = _paired_clips(self.gt, self.lq, clips)
        for clip in self.clips:
            if len(self._frames[clip]) < num_frames:
                raise FTVSRError(
                    f"clip {clip!r} has {len(self._frames[clip])} frames, fewer than num_frames={num_frames}"
                )
        self.num_frames = num_frames
        self.gt_patch_size = gt_patch_size
        self.scale = scale
        self.crf_raw_prob = crf_raw_prob
        self.crf_per_frame = crf_per_frame
        self.reverse_prob = reverse_prob
        self.flip_prob = flip_prob
        self.transpose_prob = transpose_prob
        self.mirror_passes = mirror_passes
        self.samples_per_epoch = samples_per_epoch
        self.seed = seed
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        """With a fixed `seed`, select the epoch's samples (as DistributedSampler.set_epoch)."""
        self.epoch = epoch

    def __len__(self) -> int:
        return self.samples_per_epoch if self.samples_per_epoch is not None else len(self.clips)

    def _rng(self, index: int) -> np.random.Generator:
        if self.seed is None:
            return np.random.default_rng(int(torch.randint(0, 2**62, ()).item()))
        return np.random.default_rng([self.seed, self.epoch, index])

    def __getitem__(self, index: int) -> dict:
        if not 0 <= index < len(self):
            raise IndexError(index)
        rng = self._rng(index)
        clip = self.clips[index % len(self.clips)]
        frames = self._frames[clip]
        start = int(rng.integers(len(frames) - self.num_frames + 1))
        window = frames[start : start + self.num_frames]
        if self.crf_per_frame:
            levels = [draw_crf_level(rng, self.levels, self.crf_raw_prob) for _ in window]
        else:
            levels = [draw_crf_level(rng, self.levels, self.crf_raw_prob)] * len(window)
        if rng.random() < self.reverse_prob:
            window, levels = window[::-1], levels[::-1]

        lq = _read_window([self.lq[level] for level in levels], clip, window, "LQ")
        gt = _read_window([self.gt] * len(window), clip, window, "GT")
        _check_scale(lq, gt, self.scale, clip)

        patch = self.gt_patch_size // self.scale
        h, w = lq.shape[1:3]
        if h < patch or w < patch:
            raise FTVSRError(
                f"clip {clip}: LQ frames {w}x{h} are smaller than the LQ patch "
                f"{patch}x{patch} (gt_patch_size={self.gt_patch_size})"
            )
        top, left = int(rng.integers(h - patch + 1)), int(rng.integers(w - patch + 1))
        s = self.scale
        lq = lq[:, top : top + patch, left : left + patch]
        gt = gt[:, top * s : (top + patch) * s, left * s : (left + patch) * s]
        if rng.random() < self.flip_prob:  # horizontal
            lq, gt = lq[:, :, ::-1], gt[:, :, ::-1]
        if rng.random() < self.flip_prob:  # vertical
            lq, gt = lq[:, ::-1], gt[:, ::-1]
        if rng.random() < self.transpose_prob:
            lq, gt = lq.transpose(0, 2, 1, 3), gt.transpose(0, 2, 1, 3)
        for _ in range(self.mirror_passes):
            lq, gt, levels = (np.concatenate([lq, lq[::-1]]), np.concatenate([gt, gt[::-1]]), levels + levels[::-1])
        return {
            "lq": _to_tensor(lq),
            "gt": _to_tensor(gt),
            "crf": ",".join(levels) if self.crf_per_frame else levels[0],
            "clip": clip,
        }


class VideoSRTestDataset(Dataset):
    """Whole clips for evaluation: REDS4, Vid4 or any pair of set folders / LMDBs.

    Args:
        gt, lq: frame sources or paths with the same clips and frame names; LQ `scale`
            times smaller.
        clips: which clips, in this order (default: every GT clip, sorted).
        num_frames: only the first `num_frames` frames of each clip (default: all).

    A sample: `{"lq": float32 (t, 3, h, w) in [0, 1], "gt": float32 (t, 3, scale*h,
    scale*w), "clip": name}`, frames in name order.
    """

    def __init__(
        self,
        gt: str | os.PathLike | FrameSource,
        lq: str | os.PathLike | FrameSource,
        clips: Sequence[str] | None = None,
        scale: int = 4,
        num_frames: int | None = None,
    ):
        self.gt = open_frames(gt)
        self.lq = open_frames(lq)
        self.clips, self._frames = _paired_clips(self.gt, {"LQ": self.lq}, clips)
        if num_frames is not None and num_frames < 1:
            raise FTVSRError(f"num_frames must be >= 1, got {num_frames}")
        self.scale = scale
        self.num_frames = num_frames

    def __len__(self) -> int:
        return len(self.clips)

    def __getitem__(self, index: int) -> dict:
        clip = self.clips[index]
        frames = self._frames[clip][: self.num_frames]
        lq = _read_window([self.lq] * len(frames), clip, frames, "LQ")
        gt = _read_window([self.gt] * len(frames), clip, frames, "GT")
        _check_scale(lq, gt, self.scale, clip)
        return {"lq": _to_tensor(lq), "gt": _to_tensor(gt), "clip": clip}


# ------------------------------------------------------------------------------------ REDS


def reds_train_dataset(
    gt: str | os.PathLike | FrameSource,
    lq: Mapping[Level, str | os.PathLike | FrameSource],
    *,
    num_frames: int = REDS_NUM_FRAMES,
    gt_patch_size: int = 256,
    partition: Literal["REDS4", "official"] = "REDS4",
    leak_reds4: bool = False,
    **kwargs,
) -> VideoSRTrainDataset:
    """REDS training windows (40 frames, 256 GT patches, the CRF mix), REDS4 held out.

    `gt`: REDS/train/train_sharp (or its LMDB), `lq`: level -> the X4 LR set for that level.
    See `reds_split` for `partition` and `leak_reds4`; other keywords go to
    `VideoSRTrainDataset`.
    """
    gt = open_frames(gt)
    train, _ = reds_split(gt.clips(), partition, leak_reds4)
    return VideoSRTrainDataset(gt, lq, num_frames, gt_patch_size, clips=train, **kwargs)


def reds4_test_dataset(
    gt: str | os.PathLike | FrameSource, lq: str | os.PathLike | FrameSource, **kwargs
) -> VideoSRTestDataset:
    """The REDS4 test clips 000, 011, 015, 020, whole (100 frames each)."""
    return VideoSRTestDataset(gt, lq, clips=REDS4_CLIPS, **kwargs)


def vid4_test_dataset(
    gt: str | os.PathLike | FrameSource, lq: str | os.PathLike | FrameSource, **kwargs
) -> VideoSRTestDataset:
    """Vid4: calendar, city, foliage, walk, whole."""
    return VideoSRTestDataset(gt, lq, clips=VID4_CLIPS, **kwargs)


# ------------------------------------------------------------------------------- Vimeo-90K


def read_vimeo_list(path: str | os.PathLike) -> list[str]:
    """Clip names from `sep_trainlist.txt` / `sep_testlist.txt` (`00001/0266` -> `00001_0266`).

    A line may carry more fields after the key (BasicSR's `00001/0266 (256,448,3)`).
    """
    path = Path(path)
    try:
        lines = path.read_text().splitlines()
    except OSError as err:
        raise FTVSRError(f"cannot read the Vimeo-90K list {path}: {err.strerror or err}") from None
    clips = [vimeo_clip_name(line.split()[0]) for line in lines if line.strip()]
    if not clips:
        raise FTVSRError(f"the Vimeo-90K list {path} names no clips")
    return clips


def vimeo90k_train_dataset(
    gt: str | os.PathLike | FrameSource,
    lq: Mapping[Level, str | os.PathLike | FrameSource],
    trainlist: str | os.PathLike,
    *,
    gt_patch_size: int = 256,
    crf_per_frame: bool = False,
    **kwargs,
) -> VideoSRTrainDataset:
    """Vimeo-90K septuplets as the published Vimeo config trains on them.

    7 frames per clip (the whole septuplet), no temporal reverse, the 7 frames mirrored twice
    into 28 (`MirrorSequence` x2), clips from `sep_trainlist.txt`. The published code draws
    the compression level per frame for Vimeo-90K (its paths are per-frame when
    `random_crf_aug` runs); the default here draws one level per clip as for REDS, and
    `crf_per_frame=True` reproduces the published behaviour. Other keywords go to
    `VideoSRTrainDataset` (and may override these defaults).
    """
    options = {"reverse_prob": 0.0, "mirror_passes": 2, **kwargs}
    return VideoSRTrainDataset(
        gt,
        lq,
        VIMEO_NUM_FRAMES,
        gt_patch_size,
        clips=read_vimeo_list(trainlist),
        crf_per_frame=crf_per_frame,
        **options,
    )
