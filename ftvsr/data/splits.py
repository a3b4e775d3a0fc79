"""Which clips of a dataset train and which test: plain names, no torch (the data stages use them too)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Literal

from ftvsr.errors import FTVSRError

REDS4_CLIPS = ("000", "011", "015", "020")
REDS_OFFICIAL_VAL_CLIPS = tuple(f"{i:03d}" for i in range(240, 270))


def reds_split(
    available: Iterable[str], partition: Literal["REDS4", "official"] = "REDS4", leak_reds4: bool = False
) -> tuple[list[str], list[str]]:
    """(training clips, test clips) among the `available` REDS clip names.

    `partition="REDS4"` (FTVSR's): test on 000, 011, 015, 020 and train on the other 266 of
    000..269. `"official"`: test on the validation clips 240..269.

    `leak_reds4=True` reproduces the published code, whose REDS4 training set still contains
    the four test clips. In `SRREDSMultipleGTDataset.load_annotations` the REDS4 names are
    first expanded by `generate_crop_video_list` into the names of their 2x2 spatial crops
    (`000_0_0`, `000_0_1`, `000_1_0`, `000_1_1`, ...: the form the test folders are stored
    in), and the training keys `000`..`269` are then filtered with `key not in
    val_partition`. `"000"` never equals `"000_0_0"`, so nothing is removed: the published
    models trained on all 270 clips, REDS4 included. Use the flag only to compare with the
    published numbers; the default trains on 266 clips, as the paper describes.
    """
    available = sorted(available)
    if partition == "REDS4":
        test = list(REDS4_CLIPS)
    elif partition == "official":
        test = list(REDS_OFFICIAL_VAL_CLIPS)
    else:
        raise FTVSRError(f"REDS partition must be 'REDS4' or 'official', got {partition!r}")
    leak = leak_reds4 and partition == "REDS4"
    train = [clip for clip in available if leak or clip not in test]
    return train, [clip for clip in test if clip in available]
