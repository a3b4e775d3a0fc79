"""Where each stage puts its frames, relative to a profile's data root.

    hr/train/<clip>/                 HR training clips
    hr/test/<dataset>/<clip>/        HR test clips, one folder per evaluation set
    lr/<level>/...                   LR in the same layout; level is `raw` or a CRF (`15`)
    lmdb/{hr,<level>}.lmdb           the training clips packed for the data loader

Stages map a library function over every *set folder* (a folder of clip folders):
`train` and each `test/<dataset>`.
"""

from __future__ import annotations

import os
from pathlib import Path

from ftvsr.errors import FTVSRError

TRAIN = "train"
TEST = "test"


def level_name(level: str | int) -> str:
    """Folder name of a compression level: ``raw`` or the CRF as a number (``15``)."""
    return str(level)


def set_folders(root: str | os.PathLike) -> list[Path]:
    """The set folders under `root`, relative to it: ``train`` and ``test/<dataset>``, sorted.

    Raises FTVSRError when `root` is missing or holds neither.
    """
    root = Path(root)
    if not root.is_dir():
        raise FTVSRError(f"input folder not found: {root}")
    found = [Path(TRAIN)] if (root / TRAIN).is_dir() else []
    if (root / TEST).is_dir():
        found += sorted(
            Path(TEST) / d.name for d in (root / TEST).iterdir() if d.is_dir() and not d.name.startswith(".")
        )
    if not found:
        raise FTVSRError(f"{root} holds no '{TRAIN}' or '{TEST}/<dataset>' folder of clips")
    return found


def training_lmdbs(lmdb_dir: str | os.PathLike, crfs: list[int]) -> tuple[Path, dict[str | int, Path]]:
    """The HR LMDB and one LR LMDB per level (``raw`` and each CRF) that the pack stage writes."""
    lmdb_dir = Path(lmdb_dir)
    levels: list[str | int] = ["raw", *crfs]
    return lmdb_dir / "hr.lmdb", {level: lmdb_dir / f"{level_name(level)}.lmdb" for level in levels}
