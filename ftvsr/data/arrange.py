"""Downloaded datasets into a profile's HR layout (`ftvsr.data.layout`), one clip folder at a time.

`fetch_dataset` leaves each dataset as its publisher groups it (`sources.py`):

    <downloads>/REDS/train/train_sharp/000..269/     GT, REDS4 = 000, 011, 015, 020
    <downloads>/Vid4/GT/{calendar,city,foliage,walk}/
    <downloads>/vimeo90k/GT/<00001_0001>/ + sep_trainlist.txt

`hr_clip_plan` says which downloaded clip becomes which HR clip of the pipeline
(``train/<clip>``, ``test/reds4/<clip>``, ``test/vid4/<clip>``), and `link_clip` makes each
one with hard links: no second copy of hundreds of GB, and the links are plain files to DVC.
Where hard links are impossible (another file system) the frames are copied.
`dataset_lr_plan` does the same for the LR frames a dataset comes with (REDS' X4, which the
published training and REDS4 test read): the degrade stage takes them as raw LR
(`link_lr_clip`, which checks they match their HR clip).

REDS4 leaves the REDS training clips unless `leak_reds4` (the published code's leak, see
`splits.reds_split`); Vimeo-90K trains on the clips of `sep_trainlist.txt`.
"""

from __future__ import annotations

import logging
import os
import shutil
from pathlib import Path

from ftvsr.data import layout, sources
from ftvsr.data.splits import REDS4_CLIPS, reds_split
from ftvsr.errors import FTVSRError
from ftvsr.io.atomic import atomic_path
from ftvsr.io.frames import image_size, list_clips, list_frames

log = logging.getLogger(__name__)

# The test sets the pipeline can prepare from downloads, and the dataset each comes from.
TEST_SET_SOURCES = {"reds4": "reds", "vid4": "vid4"}
# Where each dataset's GT set folder sits under the downloads root (a `Part.dest` of sources.py).
GT_SET_FOLDERS = {
    "reds": sources.REDS.part("train_sharp").dest,
    "vid4": sources.VID4.part("GT").dest,
    "vimeo90k": sources.VIMEO90K.part("septuplet").dest,
}
# Where a dataset's own LR set folder sits, for the datasets that come with one.
LR_SET_FOLDERS = {"reds": sources.REDS.part("train_sharp_bicubic").dest}
# The parts each dataset needs: GT, and REDS' own X4 LR.
PARTS = {
    "reds": ("train_sharp", "val_sharp", "train_sharp_bicubic", "val_sharp_bicubic"),
    "vid4": ("GT",),
    "vimeo90k": ("septuplet",),
}
VIMEO_TRAIN_LIST = "sep_trainlist.txt"


def datasets_needed(source: str, test_sets: list[str]) -> list[str]:
    """The downloadable datasets (keys of `sources.SOURCES`) behind a training source and test sets."""
    unknown = sorted(set(test_sets) - set(TEST_SET_SOURCES))
    if unknown:
        raise FTVSRError(
            f"test sets {unknown} cannot be prepared from downloads: known ones are {sorted(TEST_SET_SOURCES)}"
        )
    if source not in GT_SET_FOLDERS:
        raise FTVSRError(
            f"training source {source!r} is not a downloadable dataset: use one of {sorted(GT_SET_FOLDERS)}"
        )
    needed = [source] + [TEST_SET_SOURCES[name] for name in test_sets]
    return list(dict.fromkeys(needed))


def _vimeo_train_clips(downloads: Path) -> list[str]:
    split = downloads / Path(GT_SET_FOLDERS["vimeo90k"]).parent / VIMEO_TRAIN_LIST
    if not split.is_file():
        raise FTVSRError(f"Vimeo-90K split list not found: {split} (fetch vimeo90k first)")
    return [sources.vimeo_clip_name(line) for line in split.read_text().splitlines() if line.strip()]


def hr_clip_plan(
    source: str, test_sets: list[str], downloads: str | os.PathLike, leak_reds4: bool = False
) -> dict[str, Path]:
    """``"<set folder>/<clip>"`` (layout of `hr/`) -> the downloaded clip folder it is made from.

    Raises FTVSRError naming the first downloaded folder or clip that is missing.
    """
    downloads = Path(downloads)

    def gt(dataset: str) -> tuple[Path, list[str]]:
        folder = downloads / GT_SET_FOLDERS[dataset]
        if not folder.is_dir():
            raise FTVSRError(
                f"{dataset} is not downloaded: {folder} not found (run `ftvsr fetch {dataset} --root {downloads}`)"
            )
        return folder, list_clips(folder)

    datasets_needed(source, test_sets)  # names checked before any folder is read
    plan: dict[str, Path] = {}
    folder, clips = gt(source)
    if source == "reds":
        clips, _ = reds_split(clips, "REDS4", leak_reds4)
    elif source == "vimeo90k":
        available = set(clips)
        clips = _vimeo_train_clips(downloads)
        missing = [clip for clip in clips if clip not in available]
        if missing:
            raise FTVSRError(f"{len(missing)} clips of {VIMEO_TRAIN_LIST} are missing from {folder}, e.g. {missing[0]}")
    plan.update({f"{layout.TRAIN}/{clip}": folder / clip for clip in clips})
    for name in test_sets:
        folder, clips = gt(TEST_SET_SOURCES[name])
        if name == "reds4":
            missing = sorted(set(REDS4_CLIPS) - set(clips))
            if missing:
                raise FTVSRError(f"REDS4 clips {missing} are missing from {folder}")
            clips = list(REDS4_CLIPS)
        plan.update({f"{layout.TEST}/{name}/{clip}": folder / clip for clip in clips})
    return plan


def dataset_lr_plan(hr_plan: dict[str, Path], downloads: str | os.PathLike) -> dict[str, Path]:
    """The downloaded LR clip folder of every clip of `hr_plan` whose dataset comes with its own LR.

    Raises FTVSRError naming the LR folder or clip that is missing.
    """
    downloads = Path(downloads)
    plan = {}
    for name, hr_clip in hr_plan.items():
        for dataset, lr_folder in LR_SET_FOLDERS.items():
            if hr_clip.parent != downloads / GT_SET_FOLDERS[dataset]:
                continue
            lr_clip = downloads / lr_folder / hr_clip.name
            if not lr_clip.is_dir():
                raise FTVSRError(f"{dataset}: the LR clip {lr_clip} of {hr_clip} is missing from the downloads")
            plan[name] = lr_clip
    return plan


def clip_is_linked(src_clip: str | os.PathLike, dst_clip: str | os.PathLike) -> bool:
    """True when `dst_clip` holds the frames of `src_clip` under the same names (a finished clip)."""
    src_clip, dst_clip = Path(src_clip), Path(dst_clip)
    if not dst_clip.is_dir():
        return False
    try:
        return [p.name for p in list_frames(dst_clip)] == [p.name for p in list_frames(src_clip)]
    except FTVSRError:
        return False


def link_clip(src_clip: str | os.PathLike, dst_clip: str | os.PathLike) -> int:
    """Make `dst_clip` a clip folder of hard links to the frames of `src_clip`; its frame count.

    Frames are copied where a hard link is impossible. The folder appears whole or not at all.
    """
    frames = list_frames(src_clip)
    with atomic_path(dst_clip) as tmp:
        tmp.mkdir()
        for frame in frames:
            try:
                os.link(frame, tmp / frame.name)
            except OSError:  # another file system, or links not supported there
                shutil.copy2(frame, tmp / frame.name)
    return len(frames)


def link_lr_clip(
    lr_clip: str | os.PathLike, hr_clip: str | os.PathLike, dst_clip: str | os.PathLike, scale: int
) -> int:
    """`link_clip` of a dataset's own LR clip, checked against its HR clip: the same frame names,
    each `scale` times smaller (REDS' X4 of 1280x720 is 320x180). FTVSRError naming the clip otherwise."""
    lr_frames, hr_frames = list_frames(lr_clip), list_frames(hr_clip)
    if [p.name for p in lr_frames] != [p.name for p in hr_frames]:
        raise FTVSRError(
            f"{lr_clip}: {len(lr_frames)} LR frames do not match the {len(hr_frames)} frames of {hr_clip} by name"
        )
    for lr_frame, hr_frame in zip(lr_frames, hr_frames, strict=True):
        lr_size, hr_size = image_size(lr_frame), image_size(hr_frame)
        if (lr_size[0] * scale, lr_size[1] * scale) != hr_size:
            raise FTVSRError(
                f"{lr_frame}: {lr_size[0]}x{lr_size[1]} is not {hr_frame} ({hr_size[0]}x{hr_size[1]}) / {scale}"
            )
    return link_clip(lr_clip, dst_clip)


def place_file(fetched: str | os.PathLike, target: str | os.PathLike) -> Path:
    """Copy a downloaded file to where the params expect it (atomically); nothing if it is already there."""
    fetched, target = Path(fetched), Path(target)
    if target.resolve() != fetched.resolve():
        with atomic_path(target) as tmp:
            shutil.copyfile(fetched, tmp)
        log.info("%s: copied from %s", target, fetched)
    return target
