"""Frames on disk: clip folders of images, read and written as uint8 RGB arrays.

Layout: a *set* folder holds *clip* folders, and a clip folder holds its frames as image
files whose names sort in time order (``SET/<clip>/00000000.png``). A frame in memory is a
``uint8`` array of shape ``(h, w, 3)`` (RGB); a clip is ``(t, h, w, 3)``.

Hidden entries (names starting with ``.``) are ignored everywhere: they are the temporary
siblings of atomic writes (``.<name>.tmp``) or operating-system clutter.
"""

from __future__ import annotations

import io
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image

from ftvsr.errors import FTVSRError
from ftvsr.io.atomic import atomic_path

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")

# Pillow's format names by suffix: atomic writes go to a `.tmp` path, so the format
# cannot be inferred from the file being written.
_PIL_FORMATS = {
    ".png": "PNG",
    ".jpg": "JPEG",
    ".jpeg": "JPEG",
    ".bmp": "BMP",
    ".tif": "TIFF",
    ".tiff": "TIFF",
    ".webp": "WEBP",
}

# zlib level for PNG frames: on a 1280x720 frame, level 1 writes ~3.5x faster than Pillow's
# default 6 for a file ~10 % larger; frames are rewritten at every stage, so speed wins.
PNG_COMPRESS_LEVEL = 1


def frame_name(index: int, suffix: str = ".png") -> str:
    """The name of frame `index` in clips this project writes: ``00000000.png``."""
    return f"{index:08d}{suffix}"


def _visible(entries: Sequence[Path]) -> list[Path]:
    return sorted(p for p in entries if not p.name.startswith("."))


def list_clips(folder: str | os.PathLike) -> list[str]:
    """Sorted names of the clip folders in the set folder `folder` (files beside them are ignored).

    Raises FTVSRError when `folder` is missing, not a folder, or holds no clip folder.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise FTVSRError(f"set folder not found: {folder}")
    clips = [p.name for p in _visible(list(folder.iterdir())) if p.is_dir()]
    if not clips:
        raise FTVSRError(f"no clip folders in {folder}")
    return clips


def list_frames(clip_dir: str | os.PathLike) -> list[Path]:
    """Sorted image files of the clip folder `clip_dir`.

    Raises FTVSRError when the folder is missing or empty, or when it holds anything that
    is not an image file (the error names the first such entry).
    """
    clip_dir = Path(clip_dir)
    if not clip_dir.is_dir():
        raise FTVSRError(f"clip folder not found: {clip_dir}")
    entries = _visible(list(clip_dir.iterdir()))
    for entry in entries:
        if not entry.is_file() or entry.suffix.lower() not in IMAGE_SUFFIXES:
            raise FTVSRError(
                f"not an image frame: {entry} (a clip folder holds only {', '.join(IMAGE_SUFFIXES)} files)"
            )
    if not entries:
        raise FTVSRError(f"no frames in clip folder {clip_dir}")
    return entries


def read_frame(path: str | os.PathLike) -> np.ndarray:
    """Read one image as uint8 RGB ``(h, w, 3)``, fully decoded.

    Grayscale, palette and RGBA images are converted to RGB (alpha is dropped). A missing,
    corrupt or truncated file, or a 16-bit/float grayscale image, raises FTVSRError naming it.
    """
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as e:
        raise FTVSRError(f"cannot read frame {path}: {e.strerror or e}") from e
    try:
        # verify() checks the structure and the checksums; it leaves the image unusable,
        # so the pixels are decoded from a second handle. load() catches truncation.
        with Image.open(io.BytesIO(data)) as probe:
            probe.verify()
        with Image.open(io.BytesIO(data)) as image:
            image.load()
            if image.mode not in ("RGB", "RGBA", "RGBX", "L", "LA", "P", "PA", "1", "CMYK", "YCbCr"):
                raise FTVSRError(f"unsupported image mode {image.mode} in {path} (expected 8-bit RGB or grayscale)")
            array = np.asarray(image.convert("RGB") if image.mode != "RGB" else image, dtype=np.uint8)
    except FTVSRError:
        raise
    except Exception as e:  # Pillow raises OSError, SyntaxError, ValueError, zlib errors...
        raise FTVSRError(f"corrupt or unreadable image {path}: {e}") from e
    return np.ascontiguousarray(array)


def image_size(path: str | os.PathLike) -> tuple[int, int]:
    """``(width, height)`` of an image from its header (nothing decoded); FTVSRError naming an unreadable file."""
    try:
        with Image.open(path) as image:
            return image.size
    except Exception as e:  # OSError, PIL.UnidentifiedImageError, ...
        raise FTVSRError(f"corrupt or unreadable image {path}: {e}") from e


def read_frames(paths: Sequence[Path]) -> np.ndarray:
    """Read the frames at `paths` (one clip, in that order) as uint8 ``(t, h, w, 3)``.

    Raises FTVSRError naming the first frame whose size differs from the first frame's.
    """
    first = read_frame(paths[0])
    clip = np.empty((len(paths), *first.shape), dtype=np.uint8)
    clip[0] = first
    for i, path in enumerate(paths[1:], start=1):
        frame = read_frame(path)
        if frame.shape != first.shape:
            raise FTVSRError(
                f"frame size {frame.shape[1]}x{frame.shape[0]} of {path} differs from "
                f"{first.shape[1]}x{first.shape[0]} of {paths[0]} (one clip, one size)"
            )
        clip[i] = frame
    return clip


def read_clip(clip_dir: str | os.PathLike) -> np.ndarray:
    """Read every frame of `clip_dir` (in name order) as uint8 ``(t, h, w, 3)`` (see `read_frames`)."""
    return read_frames(list_frames(clip_dir))


def _check_frame(img: np.ndarray, what: str) -> None:
    if not isinstance(img, np.ndarray) or img.dtype != np.uint8 or img.ndim != 3 or img.shape[2] != 3:
        desc = f"{img.dtype} {img.shape}" if isinstance(img, np.ndarray) else type(img).__name__
        raise FTVSRError(f"{what}: expected a uint8 (h, w, 3) RGB array, got {desc}")


def _save(img: np.ndarray, path: Path, suffix: str) -> None:
    fmt = _PIL_FORMATS.get(suffix.lower())
    if fmt is None:
        raise FTVSRError(f"unknown image format for {path} (use one of {', '.join(IMAGE_SUFFIXES)})")
    options = {"compress_level": PNG_COMPRESS_LEVEL} if fmt == "PNG" else {}
    Image.fromarray(img, mode="RGB").save(path, format=fmt, **options)


def write_frame(path: str | os.PathLike, img: np.ndarray) -> None:
    """Write one uint8 ``(h, w, 3)`` RGB frame atomically; the format follows the suffix."""
    path = Path(path)
    _check_frame(img, str(path))
    with atomic_path(path) as tmp:
        _save(img, tmp, path.suffix)


def write_clip(
    clip_dir: str | os.PathLike,
    frames: np.ndarray | Sequence[np.ndarray],
    names: Sequence[str] | None = None,
) -> None:
    """Write a clip atomically: `clip_dir` appears whole, with all its frames, or not at all.

    `frames` is uint8 ``(t, h, w, 3)`` or a sequence of ``(h, w, 3)`` frames; `names` are
    the file names (default ``00000000.png``, ``00000001.png``, ...). An existing
    `clip_dir` is replaced.
    """
    clip_dir = Path(clip_dir)
    if names is None:
        names = [frame_name(i) for i in range(len(frames))]
    if len(names) != len(frames):
        raise FTVSRError(f"{clip_dir}: {len(frames)} frames but {len(names)} names")
    if len(frames) == 0:
        raise FTVSRError(f"{clip_dir}: no frames to write")
    if len(set(names)) != len(names):
        raise FTVSRError(f"{clip_dir}: duplicate frame names")
    for name in names:
        if Path(name).name != name or name.startswith("."):
            raise FTVSRError(f"{clip_dir}: frame name {name!r} must be a plain, visible file name")
    for name, frame in zip(names, frames, strict=True):
        _check_frame(frame, str(clip_dir / name))
    with atomic_path(clip_dir) as tmp:
        tmp.mkdir()
        for name, frame in zip(names, frames, strict=True):
            _save(frame, tmp / name, Path(name).suffix)
