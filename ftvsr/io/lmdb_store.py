"""The LMDB store: a set folder of clip folders packed into one LMDB, in BasicSR's layout.

Layout (BasicSR `basicsr/utils/lmdb_util.py::make_lmdb_from_imgs`, as its REDS / Vimeo-90K
scripts use it, so BasicSR and mmediting readers open our files and we open theirs):

    <name>.lmdb/
        data.mdb             key `clip/frame` (frame file name without extension, ASCII),
                             value: the frame encoded as PNG (RGB; cv2 decodes it as BGR)
        meta_info.txt        one line per frame: `clip/frame.png (h,w,c) compress_level`
        content.sha256       sha256 of every frame's key, shape and pixels, in meta_info order:
                             identifies the data without reading `data.mdb` again (training
                             resumes only on the same data; BasicSR readers ignore the file)

No `lock.mdb`: readers open the store with `lock=False` (as ours, BasicSR's and mmediting's
do), and a lock file changes whenever a locking process opens the store.

Reproducible bytes: packing the same frames gives the same `data.mdb`, byte for byte, so DVC's
hash of the folder repeats. Frames go in in a fixed order (clips, then frames, sorted), in the
same transactions; LMDB zero-fills the unused parts of the pages it writes (`meminit=True`;
without it they hold whatever was in the process's memory); the map size recorded in the file
is a function of the source files' sizes; the lock file, which holds per-process state, is
removed.

`LmdbFrames` reads it lazily: the environment is opened on first use in each process, so a
`LmdbFrames` built in the main process can be handed to DataLoader workers (forked or
spawned) and each worker opens its own read-only handle.
"""

from __future__ import annotations

import hashlib
import io
import logging
import os
import re
from dataclasses import dataclass
from pathlib import Path

import lmdb
import numpy as np
from PIL import Image
from tqdm import tqdm

from ftvsr.errors import FTVSRError
from ftvsr.io.atomic import atomic_path
from ftvsr.io.frames import list_clips, list_frames, read_frame

log = logging.getLogger(__name__)

META_FILE = "meta_info.txt"
DATA_FILE = "data.mdb"
CONTENT_DIGEST_FILE = "content.sha256"
LOCK_FILE = "lock.mdb"  # LMDB's lock file: not kept in the store (see above)
# A write transaction holds at most this many frames / encoded bytes (kept in memory so a
# transaction can be replayed after growing the map).
COMMIT_FRAMES = 500
COMMIT_BYTES = 256 << 20
# The map is sized from the data: the source frames' file sizes times this margin (level-1
# PNG can be larger than the source's), plus slack; it doubles if the data still do not fit.
MAP_MARGIN = 1.5
MAP_SLACK = 64 << 20

_META_LINE = re.compile(r"^(?P<key>\S+?)(?:\.png)?\s+\((?P<h>\d+),\s*(?P<w>\d+),\s*(?P<c>\d+)\)\s+(?P<level>\d+)$")


@dataclass(frozen=True)
class LmdbEntry:
    """One line of `meta_info.txt`: the key, the frame's `(h, w, c)` and its PNG level."""

    key: str
    shape: tuple[int, int, int]
    compress_level: int

    @property
    def clip(self) -> str:
        return split_key(self.key)[0]

    @property
    def frame(self) -> str:
        return split_key(self.key)[1]


def split_key(key: str) -> tuple[str, str]:
    """`000/00000000` -> (`000`, `00000000`); the clip is everything before the last `/`."""
    clip, sep, frame = key.rpartition("/")
    if not sep or not clip or not frame:
        raise FTVSRError(f"LMDB key {key!r} is not of the form clip/frame")
    return clip, frame


def parse_meta_info(path: str | os.PathLike) -> list[LmdbEntry]:
    """Parse a BasicSR `meta_info.txt` (with or without the `.png` on names), in file order."""
    path = Path(path)
    try:
        lines = path.read_text().splitlines()
    except OSError as err:
        raise FTVSRError(f"cannot read LMDB meta file {path}: {err.strerror or err}") from None
    entries = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        match = _META_LINE.match(line.strip())
        if match is None:
            raise FTVSRError(f"{path}:{number}: expected 'clip/frame.png (h,w,c) level', got {line!r}")
        shape = (int(match["h"]), int(match["w"]), int(match["c"]))
        entries.append(LmdbEntry(match["key"], shape, int(match["level"])))
    if not entries:
        raise FTVSRError(f"LMDB meta file {path} lists no frames")
    return entries


def encode_png(img: np.ndarray, compress_level: int = 1) -> bytes:
    """uint8 `(h, w, 3)` RGB -> PNG bytes at zlib level `compress_level` (0..9)."""
    buffer = io.BytesIO()
    Image.fromarray(img, mode="RGB").save(buffer, format="PNG", compress_level=compress_level)
    return buffer.getvalue()


def decode_png(data: bytes, what: str) -> np.ndarray:
    """PNG (or any Pillow image) bytes -> uint8 `(h, w, 3)` RGB; `what` names it in errors."""
    try:
        with Image.open(io.BytesIO(data)) as image:
            image.load()
            rgb = image if image.mode == "RGB" else image.convert("RGB")
            return np.asarray(rgb, dtype=np.uint8)
    except Exception as err:  # Pillow raises OSError, SyntaxError, zlib errors...
        raise FTVSRError(f"corrupt frame {what}: {err}") from None


def pack_lmdb(
    src_set_folder: str | os.PathLike,
    dst_lmdb: str | os.PathLike,
    compress_level: int = 1,
    verify: bool = False,
    progress: bool = True,
) -> Path:
    """Pack every frame of a set folder (`SET/<clip>/<frame>.png`) into an LMDB at `dst_lmdb`.

    The LMDB is written to a temporary sibling and renamed over `dst_lmdb` when complete
    (verified, with `verify`). Frames are re-encoded as PNG at `compress_level` (BasicSR's
    default 1: fast to decode, about 10 % larger than level 6).

    Args:
        verify: read every frame back and compare its pixels with the source.
    Returns:
        `dst_lmdb`.
    Raises:
        FTVSRError: missing/empty set folder, an unreadable frame, a pixel mismatch.
    """
    src = Path(src_set_folder)
    dst = Path(dst_lmdb)
    if not 0 <= compress_level <= 9:
        raise FTVSRError(f"compress_level must be in 0..9, got {compress_level}")
    frames = [(clip, path) for clip in list_clips(src) for path in list_frames(src / clip)]
    keys = set()
    for clip, path in frames:
        key = f"{clip}/{path.stem}"
        if not key.isascii() or " " in key:
            raise FTVSRError(f"{path}: LMDB keys must be ASCII without spaces")
        if key in keys:
            raise FTVSRError(f"{path}: another frame of {clip} has the same name {path.stem!r}")
        keys.add(key)
    source_bytes = sum(path.stat().st_size for _, path in frames)
    map_size = int(source_bytes * MAP_MARGIN) + MAP_SLACK
    _close_env(dst)  # a reader of the LMDB being replaced must not keep the old file mapped

    with atomic_path(dst) as tmp:
        # meminit: zero-fill pages' unused bytes, so the file's bytes repeat (see the module doc).
        env = lmdb.open(str(tmp), map_size=map_size, subdir=True, meminit=True, sync=False)
        batch: list[tuple[bytes, bytes]] = []
        batch_bytes = 0
        meta_lines = []
        content = hashlib.sha256()  # of pixels, not PNG bytes: independent of encoder and layout

        def commit() -> None:
            nonlocal map_size
            while True:
                try:
                    with env.begin(write=True) as txn:  # aborted on error: retried whole
                        for key, value in batch:
                            txn.put(key, value)
                    break
                except lmdb.MapFullError:  # the estimate was short: grow the map, write again
                    map_size *= 2
                    env.set_mapsize(map_size)
            batch.clear()

        try:
            for clip, path in tqdm(frames, desc=f"pack {dst.name}", unit="frame", disable=not progress):
                img = read_frame(path)
                content.update(f"{clip}/{path.stem} {img.shape}\n".encode("ascii"))
                content.update(np.ascontiguousarray(img).tobytes())
                value = encode_png(img, compress_level)
                batch.append((f"{clip}/{path.stem}".encode("ascii"), value))
                batch_bytes += len(value)
                h, w, c = img.shape
                meta_lines.append(f"{clip}/{path.stem}.png ({h},{w},{c}) {compress_level}\n")
                if len(batch) >= COMMIT_FRAMES or batch_bytes >= COMMIT_BYTES:
                    commit()
                    batch_bytes = 0
            commit()
            env.sync(True)
        finally:
            env.close()
        (tmp / LOCK_FILE).unlink(missing_ok=True)
        (tmp / META_FILE).write_text("".join(meta_lines))
        (tmp / CONTENT_DIGEST_FILE).write_text(content.hexdigest() + "\n")
        if verify:
            _verify(tmp, frames, progress)
    clips = len({clip for clip, _ in frames})
    log.info("%s: %d frames of %d clips packed%s", dst, len(frames), clips, " and verified" if verify else "")
    return dst


def verify_lmdb(lmdb_path: str | os.PathLike, src_set_folder: str | os.PathLike, progress: bool = True) -> None:
    """Read every frame of the LMDB back and compare its pixels with the set folder's.

    Raises:
        FTVSRError: a frame count, key or pixel mismatch (named).
    """
    src = Path(src_set_folder)
    _verify(Path(lmdb_path), [(clip, path) for clip in list_clips(src) for path in list_frames(src / clip)], progress)


def _verify(lmdb_path: Path, frames: list[tuple[str, Path]], progress: bool) -> None:
    store = LmdbFrames(lmdb_path)
    try:
        if len(store) != len(frames):
            raise FTVSRError(f"{lmdb_path}: {len(store)} frames packed, {len(frames)} in the source")
        for clip, path in tqdm(frames, desc="verify", unit="frame", disable=not progress):
            if not np.array_equal(store.read(f"{clip}/{path.stem}"), read_frame(path)):
                raise FTVSRError(f"LMDB frame {clip}/{path.stem} differs from its source {path}")
    finally:
        store.close()


# One read-only environment per LMDB per process: py-lmdb refuses to open a path twice in a
# process, so every LmdbFrames on the same path shares it. After a fork the child closes
# its copies of the parent's handles (harmless to the parent: opened with lock=False) and
# opens its own on first use.
_ENVS: dict[str, lmdb.Environment] = {}
_ENVS_PID = os.getpid()


def _shared_env(path: Path) -> lmdb.Environment:
    global _ENVS_PID
    if _ENVS_PID != os.getpid():
        for inherited in _ENVS.values():
            inherited.close()
        _ENVS.clear()
        _ENVS_PID = os.getpid()
    key = os.path.realpath(path)
    env = _ENVS.get(key)
    if env is None:
        try:
            # lock=False: readers never write; readahead off suits random frame access.
            env = lmdb.open(key, readonly=True, lock=False, readahead=False, meminit=False, max_readers=512)
        except lmdb.Error as err:
            raise FTVSRError(f"cannot open LMDB {path}: {err}") from None
        _ENVS[key] = env
    return env


def _close_env(path: Path) -> None:
    """Close this process's handle on `path`, if any (a later read opens it again)."""
    if _ENVS_PID == os.getpid():
        env = _ENVS.pop(os.path.realpath(path), None)
        if env is not None:
            env.close()


class LmdbFrames:
    """Read-only access to a packed LMDB: `keys()`, `clips()`, `read(key)`.

    Opening is lazy and per process: the environment is opened the first time a process
    reads (and shared by every `LmdbFrames` of that path in the process), so the object can
    be handed to forked or spawned DataLoader workers. `meta_info.txt` is parsed once, here.
    """

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        if not self.path.is_dir():
            raise FTVSRError(f"LMDB not found: {self.path} (pack it with pack_lmdb)")
        if not (self.path / DATA_FILE).is_file():
            raise FTVSRError(f"{self.path} is not an LMDB: {DATA_FILE} is missing")
        if not (self.path / META_FILE).is_file():
            raise FTVSRError(f"{self.path} has no {META_FILE}: not packed by pack_lmdb/BasicSR")
        self._entries = {e.key: e for e in parse_meta_info(self.path / META_FILE)}
        clips: dict[str, list[str]] = {}
        for entry in self._entries.values():
            clip, frame = split_key(entry.key)
            clips.setdefault(clip, []).append(frame)
        self._clips = {clip: sorted(frames) for clip, frames in sorted(clips.items())}

    @property
    def is_open(self) -> bool:
        """Whether this process holds an open handle on the LMDB."""
        return _ENVS_PID == os.getpid() and os.path.realpath(self.path) in _ENVS

    def keys(self) -> list[str]:
        """All keys (`clip/frame`), in `meta_info.txt` order."""
        return list(self._entries)

    def clips(self) -> dict[str, list[str]]:
        """Clip name -> its frame names, both sorted."""
        return {clip: list(frames) for clip, frames in self._clips.items()}

    def shape(self, key: str) -> tuple[int, int, int]:
        """`(h, w, c)` of a frame, from `meta_info.txt` (no read)."""
        return self._entry(key).shape

    def _entry(self, key: str) -> LmdbEntry:
        try:
            return self._entries[key]
        except KeyError:
            raise FTVSRError(f"key {key!r} not in LMDB {self.path}") from None

    def read(self, key: str) -> np.ndarray:
        """The frame `clip/frame` as uint8 `(h, w, 3)` RGB."""
        entry = self._entry(key)
        try:
            with _shared_env(self.path).begin(write=False, buffers=False) as txn:
                data = txn.get(key.encode("ascii"))
        except lmdb.Error as err:
            raise FTVSRError(f"cannot read {key!r} from LMDB {self.path}: {err}") from None
        if data is None:
            raise FTVSRError(f"key {key!r} is listed in {META_FILE} but missing from LMDB {self.path}")
        img = decode_png(data, f"{key!r} in {self.path}")
        if img.shape[:2] != entry.shape[:2]:
            raise FTVSRError(f"frame {key!r} in {self.path} is {img.shape[:2]}, {META_FILE} says {entry.shape[:2]}")
        return img

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, key: object) -> bool:
        return key in self._entries

    def close(self) -> None:
        """Close this process's handle on the LMDB (shared by every reader of the path); a
        later read opens it again."""
        _close_env(self.path)

    def __repr__(self) -> str:
        return f"LmdbFrames({str(self.path)!r}, {len(self._clips)} clips, {len(self)} frames)"


def is_lmdb(path: str | os.PathLike) -> bool:
    """True when `path` is a folder holding an LMDB (`data.mdb`)."""
    return (Path(path) / DATA_FILE).is_file()
