"""Where every dataset part comes from: one table, read by `ftvsr.data.download.fetch_dataset`.

Each `Part` is one file on a publisher's server: its URL, its checksum and size where the
publisher states one (`None` otherwise: the sha256 is then recorded in a lock file at first
download and verified on every later run), and how its contents become the project's layout:
a *set folder* of clip folders of frames (`SET/<clip>/<frame>.png`).

Layout produced under the data root (the paths in `Part.dest`):

    REDS/train/train_sharp/000..269/00000000.png ...        GT, 1280x720
    REDS/train/train_sharp_bicubic/X4/000..269/...          BI x4 (the dataset's own LR)
    Vid4/GT/{calendar,city,foliage,walk}/...                GT only: LR is made by our degrade stage
    vimeo90k/GT/<00001_0001>/im1..im7.png                   septuplets, clip = "<folder>_<sub>"
    vimeo90k/sep_trainlist.txt, sep_testlist.txt            the official split lists
    weights/spynet_20210409-c6c1bd09.pth                    OpenMMLab's pretrained SPyNet

REDS keeps the published regrouping (FTVSR README, BasicSR and mmediting alike): the 30
validation clips 000..029 are renamed 240..269 and merged with the 240 training clips, so
REDS4 (000, 011, 015, 020) and the official validation split (240..269) are both clip subsets
of one folder. Vimeo-90K's two-level clip folders (`sequences/00001/0266`) are flattened to
`00001_0266` so every stage sees the same one-level layout; `vimeo_clip_name` maps a key of
`sep_trainlist.txt` to that name.

Set `FTVSR_MIRROR` (or pass `mirror=` to `fetch_dataset`) to fetch every part from
`<mirror>/<Part.mirror_path>` instead of the publisher, e.g. a lab cache or a test server.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal
from urllib.parse import urlsplit

from ftvsr.errors import FTVSRError

MIRROR_ENV = "FTVSR_MIRROR"


@dataclass(frozen=True)
class Part:
    """One downloadable file and where its contents go.

    Args:
        name: short id, unique within its dataset (`train_sharp`).
        url: the publisher's URL.
        dest: path under the data root: the set folder its clips go to (archives) or the
            file itself (`kind="file"`).
        kind: `zip` / `tar` (any tarfile compression) archives, or `file` (stored as is).
        sha256: full hex digest, or a leading part of it (>= 8 hex digits) when that is all
            the publisher gives; `None`: recorded in the lock file at first download.
        size: bytes, where the publisher states it exactly.
        clip_root: folder inside the archive that holds the clip folders.
        clip_depth: 1 for `clip/frame.png`, 2 for Vimeo's `folder/sub/frame.png` (flattened
            to `folder_sub`).
        clip_offset: added to numeric clip names (REDS validation 000..029 -> 240..269).
        extra_files: files inside the archive copied beside `dest` (split lists).
    """

    name: str
    url: str
    dest: str
    kind: Literal["zip", "tar", "file"]
    sha256: str | None = None
    size: int | None = None
    clip_root: str | None = None
    clip_depth: int = 1
    clip_offset: int = 0
    extra_files: tuple[str, ...] = ()

    @property
    def filename(self) -> str:
        """The file name in the URL (`train_sharp.zip`)."""
        return urlsplit(self.url).path.rsplit("/", 1)[-1]


@dataclass(frozen=True)
class DatasetSource:
    """A dataset: where it is described and the parts that make it up."""

    name: str
    homepage: str
    parts: tuple[Part, ...]
    notes: str = ""
    license: str = ""

    def mirror_path(self, part: Part) -> str:
        """Where `part` sits under a mirror's base URL: `<dataset>/<file name>`."""
        return f"{self.name}/{part.filename}"

    def part(self, name: str) -> Part:
        for part in self.parts:
            if part.name == name:
                return part
        raise KeyError(name)


_REDS_SERVER = "http://data.cv.snu.ac.kr:8008/webdav/dataset/REDS"
# Each REDS zip holds `<split>/<name>/<clip>/<frame>.png` (`X4/` below for the bicubic sets).
REDS = DatasetSource(
    name="REDS",
    homepage="https://seungjunnah.github.io/Datasets/reds.html",
    license="CC BY 4.0 (see the homepage)",
    notes=(
        "SNU CVLab server links from the dataset page (Google Drive mirrors are listed there "
        "too). No checksums or exact sizes are published: the lock file records them."
    ),
    parts=(
        Part(
            "train_sharp",
            f"{_REDS_SERVER}/train_sharp.zip",
            "REDS/train/train_sharp",
            "zip",
            clip_root="train/train_sharp",
        ),
        Part(
            "val_sharp",
            f"{_REDS_SERVER}/val_sharp.zip",
            "REDS/train/train_sharp",
            "zip",
            clip_root="val/val_sharp",
            clip_offset=240,
        ),
        Part(
            "train_sharp_bicubic",
            f"{_REDS_SERVER}/train_sharp_bicubic.zip",
            "REDS/train/train_sharp_bicubic/X4",
            "zip",
            clip_root="train/train_sharp_bicubic/X4",
        ),
        Part(
            "val_sharp_bicubic",
            f"{_REDS_SERVER}/val_sharp_bicubic.zip",
            "REDS/train/train_sharp_bicubic/X4",
            "zip",
            clip_root="val/val_sharp_bicubic/X4",
            clip_offset=240,
        ),
    ),
)

VID4 = DatasetSource(
    name="Vid4",
    homepage="https://people.csail.mit.edu/celiu/CVPR2011/",
    notes=(
        "The frames of Liu & Sun (CVPR 2011) as the VSR literature uses them (calendar 41, city "
        "34, foliage 49, walk 47 frames). The FTVSR README links a TeraBox share that has no "
        "direct URL; this is the PaddleGAN copy of the same GT frames (plain HTTPS). Only GT "
        "is taken: the LR inputs are made by our degrade stage (BD / BI)."
    ),
    parts=(Part("GT", "https://paddlegan.bj.bcebos.com/datasets/Vid4.zip", "Vid4/GT", "zip", clip_root="Vid4/GT"),),
)

VIMEO90K = DatasetSource(
    name="vimeo90k",
    homepage="http://toflow.csail.mit.edu/",
    notes=(
        "Septuplet set of Xue et al. (IJCV 2019), 91 701 clips of 7 frames at 448x256 in one "
        "large zip; sep_trainlist.txt (64 612 clips) is the training split. LR (BD) and the "
        "compressed versions are made by our degrade and compress stages."
    ),
    parts=(
        Part(
            "septuplet",
            "http://data.csail.mit.edu/tofu/dataset/vimeo_septuplet.zip",
            "vimeo90k/GT",
            "zip",
            clip_root="vimeo_septuplet/sequences",
            clip_depth=2,
            extra_files=("vimeo_septuplet/sep_trainlist.txt", "vimeo_septuplet/sep_testlist.txt"),
        ),
    ),
)

SPYNET = DatasetSource(
    name="spynet",
    homepage="https://github.com/open-mmlab/mmediting/tree/master/configs/restorers/basicvsr",
    notes=(
        "The SPyNet weights every published FTVSR config loads (`spynet_pretrained`). OpenMMLab "
        "names its checkpoints `<name>-<first 8 hex of sha256>.pth`: the suffix is checked "
        "as a prefix, the full digest is recorded in the lock file."
    ),
    parts=(
        Part(
            "weights",
            "https://download.openmmlab.com/mmediting/restorers/basicvsr/spynet_20210409-c6c1bd09.pth",
            "weights/spynet_20210409-c6c1bd09.pth",
            "file",
            sha256="c6c1bd09",
        ),
    ),
)

SOURCES: dict[str, DatasetSource] = {s.name.lower(): s for s in (REDS, VID4, VIMEO90K, SPYNET)}


def get_source(name: str) -> DatasetSource:
    """The table entry for `name` (case-insensitive: `reds`, `vid4`, `vimeo90k`, `spynet`)."""
    try:
        return SOURCES[name.lower()]
    except KeyError:
        raise FTVSRError(f"unknown dataset {name!r}: known ones are {sorted(SOURCES)}") from None


def vimeo_clip_name(key: str) -> str:
    """`00001/0266` (a line of sep_trainlist.txt) -> `00001_0266`, the flattened clip folder."""
    return key.strip().replace("/", "_")
