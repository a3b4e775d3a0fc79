"""Resumable, verified downloads and safe archive extraction; `fetch_dataset` drives `sources.py`.

- `download` streams over HTTP(S) (stdlib `urllib`) into `<dst>.part`, resumes an interrupted
  transfer with an HTTP `Range` request, retries transient failures (connection errors,
  timeouts, 5xx, 408/429, a body shorter than its `Content-Length`) with exponential back-off,
  fails at once on other 4xx (a 404 names the URL), and renames the `.part` file to `dst` only
  once it is complete and its sha256 matches.
- `extract` unpacks a zip or tar archive into a temporary sibling of the target folder and
  renames it into place: an entry that would land outside the target (`../`, an absolute
  path, a symlink or hard link pointing out of the tree, a device file) raises before
  anything is written, and a failure leaves no half-extracted folder.
- `fetch_dataset` downloads a dataset's parts, checks them against the table or the lock file
  (`<root>/checksums.json`: digests recorded at first download, verified on every re-run),
  extracts them and arranges the clips into the project's set-folder layout. A part the mirror
  lacks (404) is named with its dataset; an archive not in the publisher's layout is named
  with the folder expected, and removed (unless the lock file recorded it before).
"""

from __future__ import annotations

import hashlib
import http.client
import json
import logging
import os
import re
import shutil
import stat
import tarfile
import time
import urllib.error
import urllib.request
import zipfile
import zlib
from collections.abc import Sequence
from pathlib import Path, PurePosixPath

from tqdm import tqdm

from ftvsr.data.sources import MIRROR_ENV, DatasetSource, Part, get_source
from ftvsr.errors import FTVSRError
from ftvsr.io.atomic import atomic_path, write_bytes_atomic, write_text_atomic
from ftvsr.io.frames import IMAGE_SUFFIXES

log = logging.getLogger(__name__)

CHUNK = 1 << 20
USER_AGENT = "ftvsr-downloader/0.1 (+python-urllib)"
# Statuses worth another try: the server or a proxy may answer differently in a moment.
TRANSIENT_HTTP = frozenset({408, 425, 429, 500, 502, 503, 504})
MAX_BACKOFF_S = 60.0


class _Transient(Exception):
    """A failure that another attempt (resuming where this one stopped) may get past."""


class HTTPStatusError(FTVSRError):
    """The server answered a status that another try will not change (a 4xx): `url`, `code`."""

    def __init__(self, message: str, url: str, code: int) -> None:
        super().__init__(message)
        self.url = url
        self.code = code


# ------------------------------------------------------------------------------------------
# checksums


def sha256_file(path: str | os.PathLike, progress: bool = False) -> str:
    """Hex sha256 of a file, read in 1 MiB chunks."""
    path = Path(path)
    digest = hashlib.sha256()
    with (
        open(path, "rb") as f,
        tqdm(
            total=path.stat().st_size,
            unit="B",
            unit_scale=True,
            desc=f"sha256 {path.name}",
            disable=not progress,
            leave=False,
        ) as bar,
    ):
        while chunk := f.read(CHUNK):
            digest.update(chunk)
            bar.update(len(chunk))
    return digest.hexdigest()


def _normalise_sha256(expected: str | None) -> str | None:
    if expected is None:
        return None
    expected = expected.strip().lower()
    if not re.fullmatch(r"[0-9a-f]{8,64}", expected):
        raise FTVSRError(f"sha256 must be 8 to 64 hex digits, got {expected!r}")
    return expected


def sha256_matches(digest: str, expected: str) -> bool:
    """`expected` is a full digest or a leading part of one (OpenMMLab's `-c6c1bd09` suffix)."""
    return digest.lower().startswith(expected.lower())


# ------------------------------------------------------------------------------------------
# download


def download(
    url: str,
    dst: str | os.PathLike,
    sha256: str | None = None,
    *,
    size: int | None = None,
    retries: int = 5,
    backoff: float = 1.0,
    timeout: float = 60.0,
    progress: bool = True,
) -> str:
    """Download `url` to `dst` and return the file's full sha256 (hex).

    An existing `dst` is verified against `sha256` and kept when it matches (downloaded
    again when it does not). The transfer goes to `<dst>.part`; an interrupted one is resumed
    from there by the next attempt or the next call.

    Args:
        sha256: full hex digest, or a leading part (>= 8 hex digits); `None`: not checked.
        size: expected size in bytes, if known.
        retries: further attempts after a transient failure that made no progress (an
            attempt that received bytes resets the count: a flaky link still finishes).
        backoff: first wait in seconds, doubled after each failure (capped at 60 s).
    Raises:
        FTVSRError: HTTP 4xx (other than 408/429), too many failures, wrong size or checksum
            (the bad file is removed), a `url` that is not HTTP(S).
    """
    dst = Path(dst)
    expected = _normalise_sha256(sha256)
    if not url.startswith(("http://", "https://")):
        raise FTVSRError(f"only http(s) URLs can be downloaded, got {url!r}")
    if dst.is_file():
        digest = sha256_file(dst, progress=progress)
        if expected is None or sha256_matches(digest, expected):
            log.info("%s: already downloaded%s", dst, "" if expected is None else ", sha256 verified")
            return digest
        log.warning("%s: sha256 %s is not the expected %s: downloading it again", dst, digest, expected)
        # A corrupted or replaced file: fetch it again rather than trusting it.
        dst.unlink()
    dst.parent.mkdir(parents=True, exist_ok=True)
    part = dst.with_name(dst.name + ".part")

    failures = 0
    while True:
        before = part.stat().st_size if part.exists() else 0
        try:
            digest = _attempt(url, part, timeout=timeout, progress=progress)
            break
        except _Transient as err:
            after = part.stat().st_size if part.exists() else 0
            failures = 0 if after > before else failures + 1
            if failures > retries:
                raise FTVSRError(
                    f"could not download {url} after {retries + 1} attempts without progress: "
                    f"{err} (the partial file {part} is kept for the next try)"
                ) from None
            time.sleep(min(backoff * 2 ** max(failures - 1, 0), MAX_BACKOFF_S))

    got = part.stat().st_size
    if size is not None and got != size:
        part.unlink()
        raise FTVSRError(f"{url}: downloaded {got} bytes, expected {size}; removed the file")
    if expected is not None and not sha256_matches(digest, expected):
        part.unlink()
        raise FTVSRError(f"{url}: sha256 {digest} does not match the expected {expected}; removed the downloaded file")
    os.replace(part, dst)  # the .part file is the temporary sibling: rename only when verified
    log.info("%s: downloaded from %s (%d bytes%s)", dst, url, got, "" if expected is None else ", sha256 verified")
    return digest


def _hash_existing(part: Path) -> hashlib._Hash:
    digest = hashlib.sha256()
    with open(part, "rb") as f:
        while chunk := f.read(CHUNK):
            digest.update(chunk)
    return digest


def _attempt(url: str, part: Path, timeout: float, progress: bool) -> str:
    """One request: append to `part` (resuming with Range) until the body ends; return sha256."""
    offset = part.stat().st_size if part.exists() else 0
    headers = {"User-Agent": USER_AGENT, "Accept-Encoding": "identity"}
    if offset:
        headers["Range"] = f"bytes={offset}-"
    request = urllib.request.Request(url, headers=headers)
    try:
        response = urllib.request.urlopen(request, timeout=timeout)
    except urllib.error.HTTPError as err:
        err.close()
        if err.code == 416 and offset:
            total = _content_range_total(err.headers.get("Content-Range", ""))
            if total == offset:  # the previous attempt got everything but did not rename
                return _hash_existing(part).hexdigest()
            part.unlink()  # the partial file does not fit the resource any more: start over
            raise _Transient(f"HTTP 416 for a resume at byte {offset}; restarting") from None
        if err.code in TRANSIENT_HTTP:
            raise _Transient(f"HTTP {err.code} {err.reason}") from None
        raise HTTPStatusError(
            f"{url}: HTTP {err.code} {err.reason}"
            + (" (not found: check the URL or the mirror)" if err.code == 404 else ""),
            url,
            err.code,
        ) from None
    except (urllib.error.URLError, http.client.HTTPException, ConnectionError, TimeoutError) as err:
        raise _Transient(f"{type(err).__name__}: {err}") from None

    with response:
        status = response.status
        length = response.headers.get("Content-Length")
        length = int(length) if length is not None and length.isdigit() else None
        if status == 206:
            start = _content_range_start(response.headers.get("Content-Range", ""))
            if start != offset:
                part.unlink(missing_ok=True)
                raise _Transient(f"server resumed at byte {start}, asked for {offset}; restarting")
            digest = _hash_existing(part)
            mode = "ab"
            total = _content_range_total(response.headers.get("Content-Range", ""))
        else:  # 200: the whole body (a server that ignores Range sends it again)
            offset = 0
            digest = hashlib.sha256()
            mode = "wb"
            total = length
        received = 0
        with (
            open(part, mode) as f,
            tqdm(
                total=total,
                initial=offset,
                unit="B",
                unit_scale=True,
                unit_divisor=1024,
                desc=part.name[:-5],
                disable=not progress,
                leave=False,
            ) as bar,
        ):
            try:
                while chunk := response.read(CHUNK):
                    f.write(chunk)
                    digest.update(chunk)
                    received += len(chunk)
                    bar.update(len(chunk))
            except (http.client.HTTPException, ConnectionError, TimeoutError, OSError) as err:
                raise _Transient(
                    f"transfer broke after {offset + received} bytes: {type(err).__name__}: {err}"
                ) from None
        # http.client returns b"" (no error) when the peer closes before Content-Length.
        if length is not None and received < length:
            raise _Transient(f"short read: got {received} of {length} bytes")
    return digest.hexdigest()


def _content_range_start(value: str) -> int | None:
    match = re.match(r"bytes\s+(\d+)-\d+/(\d+|\*)", value)
    return int(match.group(1)) if match else None


def _content_range_total(value: str) -> int | None:
    match = re.match(r"bytes\s+(?:\d+-\d+|\*)/(\d+)", value)
    return int(match.group(1)) if match else None


# ------------------------------------------------------------------------------------------
# extraction


def _check_name(name: str, archive: Path) -> PurePosixPath:
    """The entry's path inside the target; raise if it is absolute or climbs out with `..`."""
    posix = name.replace("\\", "/")
    if posix.startswith("/") or re.match(r"^[A-Za-z]:", posix):
        raise FTVSRError(f"{archive}: entry {name!r} has an absolute path; refusing to extract")
    parts = [p for p in posix.split("/") if p not in ("", ".")]
    if ".." in parts:
        raise FTVSRError(f"{archive}: entry {name!r} escapes the target folder; refusing to extract")
    return PurePosixPath(*parts) if parts else PurePosixPath(".")


def _check_link(name: str, target: str, relative_to_entry: bool, archive: Path) -> None:
    """A link must resolve inside the tree (symlinks: from the entry's folder; hard links: root)."""
    posix = target.replace("\\", "/")
    if posix.startswith("/") or re.match(r"^[A-Za-z]:", posix):
        raise FTVSRError(f"{archive}: link {name!r} -> {target!r} points outside the target folder")
    base = PurePosixPath(name.replace("\\", "/")).parent if relative_to_entry else PurePosixPath()
    resolved = os.path.normpath(str(base / posix))
    if resolved == ".." or resolved.startswith("../"):
        raise FTVSRError(f"{archive}: link {name!r} -> {target!r} points outside the target folder")


def _check_zip(zf: zipfile.ZipFile, archive: Path) -> list[zipfile.ZipInfo]:
    members = zf.infolist()
    for info in members:
        _check_name(info.filename, archive)
        if stat.S_ISLNK(info.external_attr >> 16):
            # zipfile writes links as small files holding the target; still refuse escapes.
            _check_link(info.filename, zf.read(info).decode("utf-8", "replace"), True, archive)
    return members


def _check_tar(tf: tarfile.TarFile, archive: Path) -> list[tarfile.TarInfo]:
    members = tf.getmembers()
    for member in members:
        _check_name(member.name, archive)
        if member.issym():
            _check_link(member.name, member.linkname, True, archive)
        elif member.islnk():
            _check_link(member.name, member.linkname, False, archive)
        elif not (member.isfile() or member.isdir()):
            raise FTVSRError(f"{archive}: entry {member.name!r} is a device or fifo; refusing to extract")
    return members


def extract(archive: str | os.PathLike, dst_dir: str | os.PathLike, progress: bool = True) -> Path:
    """Extract a zip or tar(.gz/.bz2/.xz) archive into `dst_dir` (replaced if it exists).

    Every entry is checked before anything is written; the archive is unpacked into a
    temporary sibling folder that is renamed to `dst_dir` only when extraction succeeded.

    Raises:
        FTVSRError: unknown or corrupt archive, an entry escaping `dst_dir` (named).
    """
    archive = Path(archive)
    if not archive.is_file():
        raise FTVSRError(f"archive not found: {archive}")
    dst_dir = Path(dst_dir)
    try:
        if zipfile.is_zipfile(archive):
            with zipfile.ZipFile(archive) as zf:
                zip_members = _check_zip(zf, archive)
                with atomic_path(dst_dir) as tmp:
                    tmp.mkdir()
                    for info in tqdm(
                        zip_members, desc=f"extract {archive.name}", unit="file", disable=not progress, leave=False
                    ):
                        zf.extract(info, tmp)
        elif tarfile.is_tarfile(archive):
            with tarfile.open(archive) as tf:
                tar_members = _check_tar(tf, archive)
                with atomic_path(dst_dir) as tmp:
                    tmp.mkdir()
                    for member in tqdm(
                        tar_members, desc=f"extract {archive.name}", unit="file", disable=not progress, leave=False
                    ):
                        # The "data" filter re-checks what _check_tar did (defence in depth).
                        tf.extract(member, tmp, filter="data")
        else:
            raise FTVSRError(f"{archive} is neither a zip nor a tar archive")
    except (zipfile.BadZipFile, tarfile.TarError, EOFError, zlib.error) as err:
        raise FTVSRError(f"{archive}: corrupt or truncated archive ({type(err).__name__}: {err})") from None
    return dst_dir


# ------------------------------------------------------------------------------------------
# datasets


def _load_lock(path: Path) -> dict[str, dict]:
    if not path.exists():
        return {}
    try:
        lock = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as err:
        raise FTVSRError(f"checksum lock file {path} is unreadable: {err}") from None
    if not isinstance(lock, dict):
        raise FTVSRError(f"checksum lock file {path} must hold a JSON object")
    return lock


def _expected_sha256(key: str, part: Part, lock: dict[str, dict], lock_path: Path) -> str | None:
    recorded = lock.get(key, {}).get("sha256")
    if recorded is None:
        return part.sha256
    if part.sha256 is not None and not sha256_matches(recorded, part.sha256):
        raise FTVSRError(
            f"{lock_path}: {key} has sha256 {recorded}, but the sources table says "
            f"{part.sha256}: remove the stale entry"
        )
    return recorded


def _renamed(clip: str, offset: int, archive: Path) -> str:
    if not offset:
        return clip
    if not clip.isdigit():
        raise FTVSRError(f"{archive}: clip folder {clip!r} is not numeric, cannot add offset {offset}")
    return f"{int(clip) + offset:0{len(clip)}d}"


def _outline(tree: Path, limit: int = 6) -> str:
    """The first entries of an extracted tree, two levels deep: `['train/', 'train/000/', ...]`."""
    names: list[str] = []
    for first in sorted(tree.iterdir()):
        names.append(first.name + "/" * first.is_dir())
        if first.is_dir():
            names += [f"{first.name}/{second.name}" + "/" * second.is_dir() for second in sorted(first.iterdir())]
    more = f" and {len(names) - limit} more" if len(names) > limit else ""
    return f"{names[:limit]}{more}"


def _find_clip_root(staging: Path, part: Part, archive: Path) -> Path:
    """`part.clip_root` inside the extracted tree; if the archive nests it under another
    folder (or drops a level), the one folder whose path ends the same way or has its name."""
    if part.clip_root is None:
        return staging
    exact = staging / part.clip_root
    if exact.is_dir():
        return exact
    named = [d for d in staging.rglob(PurePosixPath(part.clip_root).name) if d.is_dir()]
    same_ending = [d for d in named if d.relative_to(staging).as_posix().endswith(part.clip_root)]
    for candidates in (same_ending, named):
        if len(candidates) == 1:
            return candidates[0]
    raise FTVSRError(
        f"{archive}: expected the clip folders under {part.clip_root + '/'!r} in the archive, found {_outline(staging)}"
    )


def _has_frames(folder: Path) -> bool:
    return any(entry.suffix.lower() in IMAGE_SUFFIXES and entry.is_file() for entry in folder.iterdir())


def _arrange(staging: Path, part: Part, dest: Path, archive: Path) -> int:
    """Move the clip folders of one extracted part into `dest`; return how many."""
    root = _find_clip_root(staging, part, archive)
    clip_dirs: list[tuple[str, Path]] = []
    for first in sorted(d for d in root.iterdir() if d.is_dir()):
        if part.clip_depth == 1:
            clip_dirs.append((_renamed(first.name, part.clip_offset, archive), first))
        else:
            clip_dirs += [
                (f"{first.name}_{second.name}", second) for second in sorted(d for d in first.iterdir() if d.is_dir())
            ]
    if not clip_dirs:
        clip = "<clip>" if part.clip_depth == 1 else "<folder>/<sub>"
        expected = f"{part.clip_root or '.'}/{clip}/<frame>.png"
        raise FTVSRError(f"{archive}: no clip folders found under {part.clip_root!r} (expected {expected})")
    for name, folder in clip_dirs:
        if not _has_frames(folder):
            rel = folder.relative_to(staging).as_posix()
            raise FTVSRError(f"{archive}: clip folder {rel + '/'!r} holds no image frames (found {_outline(folder)})")
        target = dest / name
        if target.exists():
            raise FTVSRError(f"{archive}: clip {name!r} already came from another part")
        os.replace(folder, target)
    return len(clip_dirs)


def _prune_empty(folder: Path, stop: Path) -> None:
    """Remove `folder` and its parents below `stop` while they are empty (what a failure left)."""
    while folder != stop and stop in folder.parents and folder.is_dir() and not any(folder.iterdir()):
        folder.rmdir()
        folder = folder.parent


def fetch_dataset(
    name: str,
    root: str | os.PathLike,
    *,
    parts: Sequence[str] | None = None,
    mirror: str | None = None,
    lock_file: str | os.PathLike | None = None,
    keep_archives: bool = True,
    retries: int = 5,
    backoff: float = 1.0,
    timeout: float = 60.0,
    progress: bool = True,
) -> list[Path]:
    """Download, verify, extract and arrange dataset `name` (see `sources.SOURCES`) under `root`.

    Archives go to `<root>/downloads/<dataset>/`, the arranged set folders to
    `<root>/<Part.dest>`. A destination that already exists is not rebuilt, but any archive
    still present is verified again. Digests the table does not give are recorded in the lock
    file (default `<root>/checksums.json`) and required to match on every later run; an
    archive's digest is recorded once it has been extracted and arranged.

    An archive that cannot be extracted or arranged (corrupt, or not in the publisher's layout:
    the error names it and the folder expected) is removed, unless the lock file recorded it
    before; the set folder it was for is not created.

    Args:
        parts: names of the parts to fetch (`Part.name`); None: all of them.
        mirror: base URL to fetch `<mirror>/<dataset>/<file>` from instead of the publisher;
            defaults to the `FTVSR_MIRROR` environment variable.
        keep_archives: keep the downloaded archives (re-verifiable) after extraction.
    Returns:
        The destination paths (set folders, or the file for `kind="file"` parts).
    """
    source: DatasetSource = get_source(name)
    root = Path(root)
    lock_path = Path(lock_file) if lock_file is not None else root / "checksums.json"
    lock = _load_lock(lock_path)
    vouched = set(lock)  # parts whose digest an earlier run recorded
    base = mirror if mirror is not None else os.environ.get(MIRROR_ENV) or None
    downloads = root / "downloads" / source.name
    staging_root = root / ".staging" / source.name

    unknown = sorted(set(parts or ()) - {part.name for part in source.parts})
    if unknown:
        raise FTVSRError(f"{source.name} has no parts {unknown}: its parts are {[part.name for part in source.parts]}")
    groups: dict[str, list[Part]] = {}
    for part in source.parts:
        if parts is not None and part.name not in parts:
            continue
        groups.setdefault(part.dest, []).append(part)

    def url_of(part: Part) -> str:
        return f"{base.rstrip('/')}/{source.mirror_path(part)}" if base else part.url

    def fetch_part(part: Part) -> tuple[Path, dict]:
        """Download (or re-verify) `part`; its path and the lock entry it deserves."""
        key, url = source.mirror_path(part), url_of(part)
        target = root / part.dest if part.kind == "file" else downloads / part.filename
        try:
            digest = download(
                url,
                target,
                _expected_sha256(key, part, lock, lock_path),
                size=part.size,
                retries=retries,
                backoff=backoff,
                timeout=timeout,
                progress=progress,
            )
        except HTTPStatusError as err:
            if err.code != 404:
                raise
            what = f"{source.name} part {part.name!r}"
            if base:
                raise FTVSRError(
                    f"{url}: HTTP 404 Not Found: the mirror {base} has no {key} ({what}); check {MIRROR_ENV} "
                    "(or --mirror): a mirror must serve <dataset>/<file name> as the publisher names them"
                ) from None
            raise FTVSRError(
                f"{url}: HTTP 404 Not Found: the publisher no longer serves {what}; "
                f"set {MIRROR_ENV} to a mirror that serves it as {key}"
            ) from None
        return target, {"sha256": digest, "size": target.stat().st_size, "url": part.url}

    def record(part: Part, entry: dict) -> None:
        key = source.mirror_path(part)
        if lock.get(key) != entry:
            lock[key] = entry
            write_text_atomic(lock_path, json.dumps(lock, indent=2, sort_keys=True) + "\n")

    def unpack(part: Part, archive: Path, into: Path) -> dict[str, bytes]:
        """Extract and arrange one archive into the set folder `into`; its `extra_files`.

        On failure the archive is removed unless the lock file vouches for it."""
        staging = staging_root / part.name
        try:
            extract(archive, staging, progress=progress)
            _arrange(staging, part, into, archive)
            extras = {}
            for rel in part.extra_files:
                found = staging / rel
                if not found.is_file():
                    raise FTVSRError(f"{archive}: {rel!r} is missing from the archive")
                extras[found.name] = found.read_bytes()
            return extras
        except FTVSRError as err:
            if source.mirror_path(part) in vouched:
                note = f"kept the archive, whose sha256 is the one recorded in {lock_path}"
            else:
                archive.unlink(missing_ok=True)
                _prune_empty(archive.parent, root)
                note = f"removed the downloaded archive: check what {url_of(part)} serves"
            raise FTVSRError(f"{err}; {note}") from None
        finally:
            shutil.rmtree(staging, ignore_errors=True)

    results: list[Path] = []
    try:
        for dest, group in groups.items():
            dest_path = root / dest
            results.append(dest_path)
            if dest_path.exists():
                for part in group:  # built before: re-verify what is left of its downloads
                    if (downloads / part.filename).is_file() or part.kind == "file":
                        record(part, fetch_part(part)[1])
                continue
            fetched = [(part, *fetch_part(part)) for part in group]
            for part, _, entry in fetched:
                if part.kind == "file":
                    record(part, entry)
            if all(part.kind == "file" for part in group):
                continue
            try:
                with atomic_path(dest_path) as tmp:
                    tmp.mkdir()
                    extras: dict[str, bytes] = {}
                    for part, archive, entry in fetched:
                        extras.update(unpack(part, archive, tmp))
                        record(part, entry)  # extracted and arranged: its digest is worth keeping
                    for file_name, data in extras.items():  # the split lists, only for a whole set
                        write_bytes_atomic(dest_path.parent / file_name, data)
                log.info("%s: extracted and arranged from %s", dest_path, ", ".join(a.name for _, a, _ in fetched))
            except BaseException:
                _prune_empty(dest_path.parent, root)
                raise
            if not keep_archives:
                for _, archive, _ in fetched:
                    archive.unlink(missing_ok=True)
    finally:
        shutil.rmtree(staging_root, ignore_errors=True)
        _prune_empty(staging_root.parent, root)
    return results
