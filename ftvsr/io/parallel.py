"""One process pool for per-clip work: `map_clips` runs a function over clips, clips in parallel.

The library's folder functions (`degrade_folder`, `compress_folder`) use it; the pipeline's
flows map the same per-clip functions as Prefect tasks instead.
"""

from __future__ import annotations

import multiprocessing
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import Future, ProcessPoolExecutor, as_completed
from contextlib import contextmanager
from typing import Any, TypeVar

from tqdm import tqdm

from ftvsr.errors import FTVSRError

R = TypeVar("R")


@contextmanager
def torch_threads(count: int | None) -> Iterator[None]:
    """Run the block with torch using `count` intra-op threads (None: leave as is), then restore.

    Two threads on two cores thrash as soon as another process keeps one core busy.
    """
    import torch  # only the callers that run a network pay for importing it

    before = torch.get_num_threads()
    if count:
        torch.set_num_threads(count)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def clip_error(clip: str, error: BaseException) -> FTVSRError:
    """One FTVSRError that names the clip (and keeps the file the original message names)."""
    if isinstance(error, FTVSRError):
        message = str(error)
        return FTVSRError(message if clip in message else f"clip {clip}: {message}")
    return FTVSRError(f"clip {clip}: {type(error).__name__}: {error}")


def map_clips(
    fn: Callable[..., R],
    jobs: Mapping[str, tuple[Any, ...]],
    workers: int = 1,
    progress: bool = True,
    desc: str = "clips",
) -> dict[str, R]:
    """Run ``fn(*jobs[clip])`` for every clip, on `workers` processes; ``{clip: result}``.

    `fn` must be a module-level function (it is pickled to the workers). Workers are
    *spawned*, not forked, so a parent holding threads (Prefect, torch) cannot deadlock
    them. The first failing clip cancels the clips not yet started and raises FTVSRError
    naming it; clips already finished stay written.
    """
    if workers < 1:
        raise FTVSRError(f"workers must be >= 1, got {workers}")
    results: dict[str, R] = {}
    bar = tqdm(total=len(jobs), desc=desc, unit="clip", disable=not progress)
    try:
        if workers == 1 or len(jobs) <= 1:
            for clip, args in jobs.items():
                try:
                    results[clip] = fn(*args)
                except Exception as e:
                    raise clip_error(clip, e) from e
                bar.update()
            return results
        context = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(max_workers=min(workers, len(jobs)), mp_context=context) as pool:
            futures: dict[Future, str] = {pool.submit(fn, *args): clip for clip, args in jobs.items()}
            try:
                for future in as_completed(futures):
                    clip = futures[future]
                    try:
                        results[clip] = future.result()
                    except Exception as e:  # includes BrokenProcessPool when a worker dies
                        raise clip_error(clip, e) from e
                    bar.update()
            except BaseException:
                pool.shutdown(wait=True, cancel_futures=True)
                raise
        return results
    finally:
        bar.close()
