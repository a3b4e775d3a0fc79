"""Stand-ins for the publishers' downloads, and a local mirror that serves them.

The archives have each publisher's exact layout (entry paths, clip and frame names, split
lists) and our own small, deterministic frames: a smooth coloured texture that pans from
frame to frame with a soft disc moving across it, so that x264, the degradations and SR all
have something meaningful to work on. Nothing here needs pytest or the network.

    archives = standin_archives()            # {"REDS/train_sharp.zip": b"PK...", ...}
    with Mirror(archives) as mirror:         # http://127.0.0.1:<port>, a daemon thread
        os.environ["FTVSR_MIRROR"] = mirror.base
        fetch_dataset("reds", root)          # or `dvc repro` in a subprocess

Keys are `DatasetSource.mirror_path(part)` (`<dataset name>/<file name>`, from
`ftvsr.data.sources`), so the stand-ins follow the table. A mirror can lack a part
(`del mirror[key]`) or serve another archive in its place (`mirror[key] = data`, e.g.
`relayout(...)` of a good one). From a shell: `python tests/standins.py build DIR` writes the
archives under DIR; `python tests/standins.py serve [--port-file F]` serves them until killed.
"""

from __future__ import annotations

import argparse
import functools
import hashlib
import io
import threading
import zipfile
import zlib
from collections.abc import Callable, Iterable, Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
from PIL import Image

from ftvsr.data import sources
from ftvsr.data.imresize import imresize

SCALE = 4
REDS4 = ("000", "011", "015", "020")
# REDS4 and three other training clips; validation clips are numbered 000.. in val_sharp.zip.
REDS_TRAIN_CLIPS = (*REDS4, "001", "002", "100")
REDS_VAL_CLIPS = 2
REDS_FRAMES = 5
# (width, height). The network needs LR frames of 15 px or more, also in the published 2x2 crops:
# LR 40x32, crops 20x16, all divisible by 4.
REDS_SIZE = (160, 128)
VID4_CLIPS = ("calendar", "city", "foliage", "walk")
# Two frame sizes, as in the real Vid4 (720x576 and 704x576 / 720x480), all multiples of 16, whose
# LR 2x2 crops are 15 px or more.
VID4_SIZES = {"calendar": (160, 128), "city": (144, 128), "foliage": (160, 128), "walk": (160, 128)}
VID4_FRAMES = 5
VIMEO_TRAIN = ("00001/0001", "00001/0266", "00002/0010")
VIMEO_TEST = ("00001/0003", "00002/0011")
VIMEO_SIZE = (112, 64)  # the real 448x256 / 4; LR 28x16
VIMEO_FRAMES = 7  # septuplets: im1..im7
SPYNET_BYTES = b"stand-in bytes, not OpenMMLab's SPyNet\n"  # cannot match the sha256 prefix c6c1bd09


# ------------------------------------------------------------------------------------------
# frames


def frame(size: tuple[int, int], index: int, seed: int = 0) -> np.ndarray:
    """Frame `index` of a clip: uint8 ``(height, width, 3)`` for ``size = (width, height)``.

    A smooth sinusoidal texture panning by a few pixels per frame, and a soft-edged disc moving
    faster the other way; `seed` picks the colours, frequencies and motions.
    """
    width, height = size
    rng = np.random.default_rng(seed)
    freq = rng.uniform(1.0, 3.0, (3, 2))  # periods across the frame, per channel and axis
    phase = rng.uniform(0, 2 * np.pi, 3)
    pan = rng.integers(1, 4, 2) * rng.choice([-1, 1], 2)  # background pixels per frame (x, y)
    speed = rng.integers(2, 5, 2) * -np.sign(pan)
    colour = rng.uniform(0.1, 0.9, 3)
    radius = rng.uniform(0.15, 0.3) * min(width, height)
    start = rng.uniform(0.25, 0.75, 2) * (width, height)

    y, x = np.mgrid[0:height, 0:width].astype(np.float64)
    bx, by = x - pan[0] * index, y - pan[1] * index
    img = np.empty((height, width, 3))
    for c in range(3):
        wave = freq[c, 0] * bx / width + freq[c, 1] * by / height
        detail = np.sin(0.4 * bx + 0.3 * by + c)  # a 12.6-pixel period: about 3 LR pixels
        img[..., c] = 0.5 + 0.3 * np.sin(2 * np.pi * wave + phase[c]) + 0.1 * detail
    cx = (start[0] + speed[0] * index) % width
    cy = (start[1] + speed[1] * index) % height
    alpha = np.clip((radius - np.hypot(x - cx, y - cy)) / 3 + 0.5, 0, 1)[..., None]  # 3-pixel soft edge
    shade = colour * (0.8 + 0.4 * (y - cy + radius) / (2 * radius))[..., None]  # lit from below
    img = img * (1 - alpha) + shade * alpha
    return np.round(np.clip(img, 0, 1) * 255).astype(np.uint8)


def downscale(img: np.ndarray, scale: int = SCALE) -> np.ndarray:
    """MATLAB-bicubic 1/`scale` downscale (the BI recipe): the stand-in for a dataset's own X4 LR."""
    return imresize(img, 1 / scale)


def png_bytes(img: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(img).save(buf, format="PNG", compress_level=1)
    return buf.getvalue()


def png(value: int, size: tuple[int, int] = (8, 6)) -> bytes:
    """A flat ``size = (width, height)`` PNG of grey `value` (for tests that only count files)."""
    return png_bytes(np.full((size[1], size[0], 3), value, np.uint8))


def clip_seed(dataset: str, clip: str) -> int:
    """A stable seed per clip, so that each clip moves and looks differently."""
    return zlib.crc32(f"{dataset}/{clip}".encode())


def clip_frames(dataset: str, clip: str, frames: int, size: tuple[int, int]) -> list[np.ndarray]:
    return [frame(size, i, clip_seed(dataset, clip)) for i in range(frames)]


# ------------------------------------------------------------------------------------------
# archives


def zip_bytes(entries: Mapping[str, bytes]) -> bytes:
    """A zip (stored, as PNGs do not compress) of `entries`: entry path -> bytes.

    The same entries give the same bytes (a fixed timestamp), in any process at any time."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for name, data in entries.items():
            info = zipfile.ZipInfo(name, date_time=(2018, 1, 1, 0, 0, 0))
            info.external_attr = 0o644 << 16
            zf.writestr(info, data)
    return buf.getvalue()


def zip_entries(data: bytes) -> dict[str, bytes]:
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        return {info.filename: zf.read(info) for info in zf.infolist()}


def relayout(data: bytes, old_prefix: str, new_prefix: str) -> bytes:
    """The zip `data` with `old_prefix` of every entry path replaced by `new_prefix` (a wrong layout)."""
    renamed = {}
    for name, value in zip_entries(data).items():
        renamed[new_prefix + name.removeprefix(old_prefix) if name.startswith(old_prefix) else name] = value
    return zip_bytes(renamed)


def mirror_key(dataset: str, part: str) -> str:
    """``"<dataset name>/<file name>"``: where the table's part is found under a mirror."""
    source = sources.get_source(dataset)
    return source.mirror_path(source.part(part))


@functools.lru_cache(maxsize=16)
def _reds(train_clips: tuple[str, ...], val_clips: int, frames: int, size: tuple[int, int]) -> dict[str, bytes]:
    out = {}
    for split, clips in (("train", train_clips), ("val", tuple(f"{i:03d}" for i in range(val_clips)))):
        gt, lr = {}, {}
        for clip in clips:
            for i, img in enumerate(clip_frames(f"REDS/{split}", clip, frames, size)):
                gt[f"{split}/{split}_sharp/{clip}/{i:08d}.png"] = png_bytes(img)
                lr[f"{split}/{split}_sharp_bicubic/X4/{clip}/{i:08d}.png"] = png_bytes(downscale(img))
        out[mirror_key("reds", f"{split}_sharp")] = zip_bytes(gt)
        out[mirror_key("reds", f"{split}_sharp_bicubic")] = zip_bytes(lr)
    return out


def reds_archives(
    train_clips: Iterable[str] = REDS_TRAIN_CLIPS,
    val_clips: int = REDS_VAL_CLIPS,
    frames: int = REDS_FRAMES,
    size: tuple[int, int] = REDS_SIZE,
) -> dict[str, bytes]:
    """REDS' four zips: `train_sharp.zip` (``train/train_sharp/<clip>/00000000.png``),
    `val_sharp.zip` (``val/val_sharp/000..``, renamed 240.. by the downloader) and their
    ``*_sharp_bicubic/X4`` twins, whose frames are the GT frames downscaled x4 (MATLAB bicubic).

    `size` is the GT ``(width, height)``; keep it a multiple of 4 (16 for 2x2 crops of LR
    divisible by 4). Keys: `mirror_key`, e.g. ``"REDS/train_sharp.zip"``.
    """
    if size[0] % SCALE or size[1] % SCALE:
        raise ValueError(f"REDS GT size must be a multiple of {SCALE}, got {size}")
    return dict(_reds(tuple(train_clips), val_clips, frames, tuple(size)))


@functools.lru_cache(maxsize=16)
def _vid4(clips: tuple[str, ...], frames: int, size: tuple[int, int] | None) -> dict[str, bytes]:
    entries = {}
    for clip in clips:
        for i, img in enumerate(clip_frames("Vid4", clip, frames, size or VID4_SIZES.get(clip, (160, 128)))):
            entries[f"Vid4/GT/{clip}/{i:08d}.png"] = png_bytes(img)
            # The PaddleGAN zip also holds its own LR sets beside GT; the downloader takes GT only.
            entries[f"Vid4/BIx4/{clip}/{i:08d}.png"] = png_bytes(downscale(img))
    return {mirror_key("vid4", "GT"): zip_bytes(entries)}


def vid4_archive(
    clips: Iterable[str] = VID4_CLIPS, frames: int = VID4_FRAMES, size: tuple[int, int] | None = None
) -> dict[str, bytes]:
    """`Vid4.zip` as PaddleGAN serves it: ``Vid4/GT/<clip>/00000000.png`` (and ``Vid4/BIx4/...``).

    `size`: one GT ``(width, height)`` for every clip; None: `VID4_SIZES` (two sizes, like Vid4).
    """
    return dict(_vid4(tuple(clips), frames, None if size is None else tuple(size)))


@functools.lru_cache(maxsize=16)
def _vimeo(train: tuple[str, ...], test: tuple[str, ...], size: tuple[int, int]) -> dict[str, bytes]:
    entries = {}
    for key in sorted((*train, *test)):
        for i, img in enumerate(clip_frames("vimeo90k", key, VIMEO_FRAMES, size), start=1):
            entries[f"vimeo_septuplet/sequences/{key}/im{i}.png"] = png_bytes(img)
    entries["vimeo_septuplet/readme.txt"] = b"Stand-in for the Vimeo-90K septuplet dataset.\n"
    entries["vimeo_septuplet/sep_trainlist.txt"] = "".join(f"{key}\n" for key in train).encode()
    entries["vimeo_septuplet/sep_testlist.txt"] = "".join(f"{key}\n" for key in test).encode()
    return {mirror_key("vimeo90k", "septuplet"): zip_bytes(entries)}


def vimeo_archive(
    train: Iterable[str] = VIMEO_TRAIN, test: Iterable[str] = VIMEO_TEST, size: tuple[int, int] = VIMEO_SIZE
) -> dict[str, bytes]:
    """`vimeo_septuplet.zip`: ``vimeo_septuplet/sequences/<00001>/<0001>/im1..im7.png`` for the
    `train` and `test` keys (``"00001/0001"``), and ``sep_trainlist.txt`` / ``sep_testlist.txt``."""
    return dict(_vimeo(tuple(train), tuple(test), tuple(size)))


def spynet_file(data: bytes = SPYNET_BYTES) -> dict[str, bytes]:
    """``spynet/spynet_20210409-c6c1bd09.pth`` holding `data` (by default bytes the downloader
    must refuse: their sha256 does not start with c6c1bd09)."""
    return {mirror_key("spynet", "weights"): data}


def spynet_source(data: bytes = SPYNET_BYTES) -> sources.DatasetSource:
    """The SPyNet table entry with the digest of `data`, to put in `sources.SOURCES["spynet"]`
    (monkeypatch) where a test wants the stand-in weights accepted."""
    part = sources.SPYNET.part("weights")
    digest = hashlib.sha256(data).hexdigest()
    return sources.DatasetSource(
        sources.SPYNET.name,
        sources.SPYNET.homepage,
        (sources.Part(part.name, part.url, part.dest, part.kind, sha256=digest),),
    )


def standin_archives(datasets: Iterable[str] = ("reds", "vid4", "vimeo90k", "spynet")) -> dict[str, bytes]:
    """Every stand-in of `datasets` with the defaults, keyed by mirror path."""
    builders: dict[str, Callable[[], dict[str, bytes]]] = {
        "reds": reds_archives,
        "vid4": vid4_archive,
        "vimeo90k": vimeo_archive,
        "spynet": spynet_file,
    }
    out: dict[str, bytes] = {}
    for name in datasets:
        out.update(builders[name.lower()]())
    return out


def write_archives(root: str | Path, archives: Mapping[str, bytes]) -> list[Path]:
    """Write `archives` to ``root/<key>`` (a folder any static HTTP server can serve as a mirror)."""
    written = []
    for key, data in archives.items():
        path = Path(root) / key
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        written.append(path)
    return written


# ------------------------------------------------------------------------------------------
# servers


class FileServer:
    """Serves `files` (URL path -> bytes) on 127.0.0.1 with Range support and scripted misbehaviour.

    `start()` / `stop()` or a `with` block run it in a daemon thread; `base` is its URL.
    """

    def __init__(self) -> None:
        self.files: dict[str, bytes] = {}
        self.cut_once: set[str] = set()  # send half the body, then drop the connection
        self.fail_times: dict[str, int] = {}  # answer 503 this many times
        self.ignore_range: set[str] = set()  # answer 200 with the whole body to a Range request
        self.requests: list[tuple[str, str | None]] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # keep test output clean
                pass

            def do_GET(self):
                path = self.path
                server.requests.append((path, self.headers.get("Range")))
                if server.fail_times.get(path, 0) > 0:
                    server.fail_times[path] -= 1
                    self.send_error(503, "try later")
                    return
                if path not in server.files:
                    self.send_error(404, "no such file")
                    return
                data = server.files[path]
                start = 0
                wanted = self.headers.get("Range")
                if wanted and path not in server.ignore_range:
                    start = int(wanted.removeprefix("bytes=").split("-")[0])
                    if start >= len(data):
                        self.send_response(416)
                        self.send_header("Content-Range", f"bytes */{len(data)}")
                        self.send_header("Content-Length", "0")
                        self.end_headers()
                        return
                    self.send_response(206)
                    self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
                else:
                    self.send_response(200)
                body = data[start:]
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if path in server.cut_once:
                    server.cut_once.discard(path)
                    self.wfile.write(body[: len(body) // 2])
                    self.wfile.flush()
                    self.close_connection = True
                    return
                self.wfile.write(body)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.port: int = self.httpd.server_address[1]
        self.base = f"http://127.0.0.1:{self.port}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, args=(0.05,), daemon=True)

    def start(self):
        self.thread.start()
        return self

    def stop(self) -> None:
        if self.thread.is_alive():
            self.httpd.shutdown()
            self.thread.join(timeout=5)
        self.httpd.server_close()

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def gets(self, path: str) -> list[str | None]:
        """The Range header (or None) of every GET of `path`, in order."""
        return [rng for p, rng in self.requests if p == path]


class Mirror(FileServer):
    """A mirror as `FTVSR_MIRROR` expects: ``<base>/<dataset name>/<file name>``.

    Indexed by mirror key (``mirror["REDS/train_sharp.zip"] = data``, ``del mirror[key]``);
    `env` is the environment that points the downloader (or a `dvc repro` subprocess) at it.
    """

    def __init__(self, archives: Mapping[str, bytes] | None = None) -> None:
        super().__init__()
        for key, data in (archives or {}).items():
            self[key] = data

    @staticmethod
    def _path(key: str) -> str:
        return "/" + key.lstrip("/")

    def __setitem__(self, key: str, data: bytes) -> None:
        self.files[self._path(key)] = data

    def __getitem__(self, key: str) -> bytes:
        return self.files[self._path(key)]

    def __delitem__(self, key: str) -> None:
        del self.files[self._path(key)]

    def __contains__(self, key: object) -> bool:
        return isinstance(key, str) and self._path(key) in self.files

    def url(self, key: str) -> str:
        return self.base + self._path(key)

    def gets_of(self, key: str) -> list[str | None]:
        return self.gets(self._path(key))

    @property
    def env(self) -> dict[str, str]:
        return {sources.MIRROR_ENV: self.base}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    build = sub.add_parser("build", help="write every stand-in archive under DIR/<dataset>/<file>")
    build.add_argument("dir", type=Path)
    serve = sub.add_parser("serve", help="serve every stand-in archive on 127.0.0.1 until killed")
    serve.add_argument("--port-file", type=Path, help="write the port here once listening")
    args = parser.parse_args(argv)
    archives = standin_archives()
    if args.command == "build":
        for path in write_archives(args.dir, archives):
            print(path)
        return
    mirror = Mirror(archives)
    if args.port_file:
        args.port_file.write_text(f"{mirror.port}\n")
    print(f"{sources.MIRROR_ENV}={mirror.base}", flush=True)
    try:
        mirror.httpd.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        mirror.httpd.server_close()


if __name__ == "__main__":
    main()
