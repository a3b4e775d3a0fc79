"""Video probe and decode throughput: the ffmpeg subprocess (before) against PyAV (after), side by side.

    python benchmarks/video_decode.py              # median of 5 rounds per figure
    python benchmarks/video_decode.py --repeats 9

"Before" is how ``ftvsr.io.video`` read videos until issue 14, kept here as the reference
(`old_probe`, `old_iter_video`): ``ffmpeg -i`` with a stream copy to the null muxer, its
stderr parsed with regexes for the size, rate and packet count, then a second ffmpeg process
decoding to rgb24 through a pipe. "After" is ``ftvsr.io.video`` as it is: PyAV in-process,
single-threaded decoding by default (``threads=1``), and with one thread per core
(``threads=0``) for comparison. Both decode every frame of:

- ``bigbuckbunny.mp4``, 1280x720, 132 frames: what the fetch stage decodes;
- ``carphone_pristine.mp4``, 176x144, 120 frames;
- an LR clip as the compress stage writes and reads back: 320x180, 64 frames, x264 CRF 25.

The decoded frames of before and after are checked equal (bit for bit) before timing. Each
figure is the median of `--repeats` rounds in which before and after take turns (a change of
load falls on both); CPU time counts this process and its finished children (the ffmpeg
processes of "before").

Measured on a 2-core x86-64 CPU (AMD EPYC), no GPU, busy with other work throughout (load
average 4-6), median of 9 rounds:

    clip                     frames  probe ms old    new  ratio  decode fps old    new  ratio  CPU ms/frame old | new
    bigbuckbunny 1280x720       132         102.6   36.8    2.8              92    137   1.49             8.30 | 4.37
    carphone 176x144            120          41.6    5.7    7.3             578    859   1.49             1.38 | 0.78
    LR 320x180 x264 CRF 25       64          36.9    3.8    9.6             428   1580   3.69             1.62 | 0.48

    (threads=0: 134, 884 and 1429 fps.) Over three such runs the decode ratios were 1.5-2.0
    (720p), 1.5-2.3 (carphone) and 3.0-3.9 (LR clip); the probe ratios 2.6-2.8, 6.7-7.4 and
    7.6-9.6.

Probing no longer starts a process nor parses a log: 3x faster on the 720p file (opening it
dominates: libavformat decodes its first frame to learn the stream), 7-10x on small clips.
Decoding takes about half the CPU per frame on 720p and a third on the LR clip: no second
process and probe, no copy of every frame through a pipe. CPU per frame is the figure that
holds whatever the load; on an idle CPU the former frame-threaded ffmpeg could spread one
720p decode over both cores, where the single-threaded default here cannot, so expect its
wall-clock advantage on one large clip to shrink there. ``threads=0`` is not the default
because with frame threads libavcodec flags a concealed frame racily (a damaged file passes
one run, fails the next); the stages get their parallelism from decoding clips side by side
in worker processes.
"""

from __future__ import annotations

import argparse
import os
import re
import resource
import statistics
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import ffmpeg
import numpy as np

from ftvsr.data.sample import sample_video_path
from ftvsr.errors import FTVSRError
from ftvsr.io.video import VideoInfo, ffmpeg_exe, iter_video, probe_video, read_video, write_video

_STREAM_LINE = re.compile(r"Stream #\d+:\d+.*?: Video: (?P<rest>.*)")
_SIZE = re.compile(r"(?<![\dx])(\d{1,5})x(\d{1,5})(?![\dx])")
_FPS = re.compile(r"([\d.]+)(k?) (?:fps|tbr)")
_FRAME_COUNT = re.compile(r"frame=\s*(\d+)")


def old_probe(path: Path) -> VideoInfo:
    """The former `probe_video`: stream copy to the null muxer, stderr parsed with regexes."""
    stream = (
        ffmpeg.input(str(path))
        .output("-", format="null", map="0:v:0", c="copy")
        .global_args("-hide_banner", "-nostdin")
    )
    done = subprocess.run(stream.compile(cmd=ffmpeg_exe()), capture_output=True, check=False)
    log = done.stderr.decode(errors="replace")
    match = next((m for m in map(_STREAM_LINE.search, log.splitlines()) if m), None)
    if done.returncode != 0 or match is None:
        raise FTVSRError(f"probing video {path} failed")
    size, rate = _SIZE.search(match["rest"]), _FPS.search(match["rest"])
    counts = _FRAME_COUNT.findall(log)
    if size is None or not counts:
        raise FTVSRError(f"cannot read the size or frame count of {path}")
    fps = float(rate[1]) * (1000 if rate[2] else 1) if rate else float("nan")
    return VideoInfo(width=int(size[1]), height=int(size[2]), num_frames=int(counts[-1]), fps=fps)


def old_iter_video(path: Path) -> Iterator[np.ndarray]:
    """The former `iter_video`: probe, then ffmpeg decoding to rgb24 on a pipe (``-xerror``)."""
    info = old_probe(path)
    frame_bytes = info.width * info.height * 3
    stream = (
        ffmpeg.input(str(path))
        .output("pipe:", format="rawvideo", pix_fmt="rgb24", map="0:v:0")
        .global_args("-hide_banner", "-nostdin", "-v", "error", "-xerror")
    )
    process = subprocess.Popen(stream.compile(cmd=ffmpeg_exe()), stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert process.stdout is not None and process.stderr is not None
    stderr = process.stderr
    drain = threading.Thread(target=stderr.read, daemon=True)
    drain.start()
    try:
        while data := process.stdout.read(frame_bytes):
            if len(data) < frame_bytes:
                raise FTVSRError(f"decoding {path}: truncated frame")
            yield np.frombuffer(data, dtype=np.uint8).reshape(info.height, info.width, 3)
        if process.wait() != 0:
            raise FTVSRError(f"decoding {path} failed")
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        process.stdout.close()
        drain.join()
        stderr.close()


def _cpu_seconds() -> float:
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def median_timings(runs: dict[str, Callable[[], object]], repeats: int) -> dict[str, tuple[float, float]]:
    """Median (wall seconds, CPU seconds) of each run over `repeats` rounds.

    The runs take turns within a round, so a change in the machine's load falls on all alike.
    """
    samples: dict[str, list[tuple[float, float]]] = {name: [] for name in runs}
    for _ in range(repeats):
        for name, run in runs.items():
            wall, cpu = time.perf_counter(), _cpu_seconds()
            run()
            samples[name].append((time.perf_counter() - wall, _cpu_seconds() - cpu))
    return {
        name: (statistics.median(w for w, _ in timings), statistics.median(c for _, c in timings))
        for name, timings in samples.items()
    }


def _drain(frames: Iterator[np.ndarray]) -> int:
    return sum(1 for _ in frames)


def make_lr_clip(path: Path, frames: int = 64, height: int = 180, width: int = 320, crf: int = 25) -> Path:
    """An LR clip as the compress stage writes it: a bigbuckbunny crop, area-downscaled 4x, x264 at `crf`."""
    hr = read_video(sample_video_path("bigbuckbunny"), max_frames=frames)
    top, left = (hr.shape[1] - 4 * height) // 2, (hr.shape[2] - 4 * width) // 2
    crop = hr[:, top : top + 4 * height, left : left + 4 * width].astype(np.float32)
    lr = crop.reshape(frames, height, 4, width, 4, 3).mean(axis=(2, 4))
    write_video(path, np.round(lr).astype(np.uint8), crf=crf)
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5, help="runs per figure (the median is shown)")
    parser.add_argument("--probes", type=int, default=10, help="probe calls per run")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="ftvsr-bench-") as scratch:
        clips = {
            "bigbuckbunny 1280x720": sample_video_path("bigbuckbunny"),
            "carphone 176x144": sample_video_path("carphone_pristine"),
            "LR 320x180 x264 CRF 25": make_lr_clip(Path(scratch) / "lr.mp4"),
        }
        rows = []
        for name, path in clips.items():
            before, after = np.stack(list(old_iter_video(path))), read_video(path)
            if before.shape != after.shape or not np.array_equal(before, after):
                raise SystemExit(f"{name}: PyAV's frames differ from ffmpeg's")
            if {old_probe(path).num_frames, probe_video(path).num_frames, len(after)} != {len(after)}:
                raise SystemExit(f"{name}: frame counts differ")
            n = len(after)
            probes = median_timings(
                {
                    "old": lambda p=path: [old_probe(p) for _ in range(args.probes)],
                    "new": lambda p=path: [probe_video(p) for _ in range(args.probes)],
                },
                args.repeats,
            )
            decodes = median_timings(
                {
                    "old": lambda p=path: _drain(old_iter_video(p)),
                    "new": lambda p=path: _drain(iter_video(p)),
                    "auto": lambda p=path: _drain(iter_video(p, threads=0)),
                },
                args.repeats,
            )
            rows.append((name, n, probes, decodes))

    print(f"{os.cpu_count()} CPUs visible, load average {os.getloadavg()[0]:.1f} at the end; median of {args.repeats}")
    print(
        f"{'clip':<24}{'frames':>7}{'probe ms old':>14}{'new':>7}{'ratio':>7}"
        f"{'decode fps old':>16}{'new':>7}{'ratio':>7}{'CPU ms/frame old | new':>24}{'fps threads=0':>15}{'ratio':>7}"
    )
    for name, n, probes, decodes in rows:
        (p_old, _), (p_new, _) = probes["old"], probes["new"]
        (d_old, c_old), (d_new, c_new), (d_auto, _) = decodes["old"], decodes["new"], decodes["auto"]
        per_probe_old, per_probe_new = 1000 * p_old / args.probes, 1000 * p_new / args.probes
        cpu = f"{1000 * c_old / n:.2f} | {1000 * c_new / n:.2f}"
        print(
            f"{name:<24}{n:>7}{per_probe_old:>14.1f}{per_probe_new:>7.1f}{p_old / p_new:>7.1f}"
            f"{n / d_old:>16.0f}{n / d_new:>7.0f}{d_old / d_new:>7.2f}{cpu:>24}"
            f"{n / d_auto:>15.0f}{d_old / d_auto:>7.2f}"
        )


if __name__ == "__main__":
    main()
