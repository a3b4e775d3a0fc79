"""How a test set is scored: the "full" protocol and the published one, per dataset.

- "full": every frame of every clip, whole frames.
- "published": the published test (`tools/test.py` with `configs/FTVSR_reds4.py` /
  `configs/FTVSR_vimeo90k.py` of researchmm/FTVSR), reproduced:
  * each clip is split into 2x2 spatial crops that are evaluated as separate clips named
    `<clip>_<i>_<j>` (i: top/bottom half, j: left/right half; LR halves at `h // 2`, `w // 2`,
    GT halves at 4x those). The network sees only the crop, as it did in the published test,
    whose test folders held pre-cropped clips `000_0_0` ... `020_1_1`;
  * REDS4: `test_frames` (default 25, the published `--test_frames`) consecutive frames from
    `start_frame` (default 0: the published start index 1 counts frames from 1), scored in RGB;
  * Vid4: every frame of each crop, scored on the Y channel (published `convert_to='y'`);
  * no border crop (published `crop_border=0`).

Colour space: `convert_to_y=None` means "the dataset's published choice": Y for Vid4 (any
dataset name starting with "vid4"), RGB otherwise, under both protocols.
"""

from __future__ import annotations

from dataclasses import dataclass

from ftvsr.errors import FTVSRError

PROTOCOLS = ("full", "published")
PUBLISHED_REDS_TEST_FRAMES = 25  # tools/test.py --test_frames default


@dataclass(frozen=True)
class Protocol:
    """How one dataset is scored: colour space, border crop, which frames, whether 2x2 crops."""

    name: str
    convert_to_y: bool
    crop_border: int
    start_frame: int
    test_frames: int | None  # None: every frame from start_frame on
    split_2x2: bool


def is_vid4(dataset: str) -> bool:
    return dataset.lower().startswith("vid4")


def is_reds(dataset: str) -> bool:
    return dataset.lower().startswith("reds")


def resolve_protocol(
    protocol: str,
    dataset: str,
    *,
    convert_to_y: bool | None = None,
    crop_border: int = 0,
    start_frame: int | None = None,
    test_frames: int | None = None,
) -> Protocol:
    """The concrete settings of `protocol` for `dataset`; explicit arguments override defaults."""
    if protocol not in PROTOCOLS:
        raise FTVSRError(f"unknown evaluation protocol {protocol!r} (use one of {', '.join(PROTOCOLS)})")
    if crop_border < 0:
        raise FTVSRError(f"crop_border must be >= 0, got {crop_border}")
    if start_frame is not None and start_frame < 0:
        raise FTVSRError(f"start_frame must be >= 0, got {start_frame}")
    if test_frames is not None and test_frames < 1:
        raise FTVSRError(f"test_frames must be >= 1, got {test_frames}")
    y = is_vid4(dataset) if convert_to_y is None else bool(convert_to_y)
    if protocol == "full":
        return Protocol("full", y, crop_border, start_frame or 0, test_frames, split_2x2=False)
    frames: int | None
    if is_reds(dataset):
        frames = PUBLISHED_REDS_TEST_FRAMES if test_frames is None else test_frames
    elif is_vid4(dataset):
        frames = test_frames
    else:
        raise FTVSRError(
            f"protocol 'published' is defined for REDS4 and Vid4 only, got dataset {dataset!r} (use protocol 'full')"
        )
    return Protocol("published", y, crop_border, start_frame or 0, frames, split_2x2=True)
