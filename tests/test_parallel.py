"""The per-clip process pool and the torch thread setting."""

from __future__ import annotations

import pytest
import torch

from ftvsr.errors import FTVSRError
from ftvsr.io.parallel import map_clips, torch_threads


def _square(x: int) -> int:
    if x < 0:
        raise ValueError("negative")
    return x * x


def test_map_clips_runs_every_clip_on_two_workers():
    assert map_clips(_square, {"a": (2,), "b": (3,)}, workers=2, progress=False) == {"a": 4, "b": 9}


def test_map_clips_names_the_failing_clip():
    with pytest.raises(FTVSRError, match="clip bad: ValueError: negative"):
        map_clips(_square, {"good": (1,), "bad": (-1,)}, workers=1, progress=False)


def test_torch_threads_sets_and_restores():
    before = torch.get_num_threads()
    target = 1 if before != 1 else 2
    with torch_threads(target):
        assert torch.get_num_threads() == target
    assert torch.get_num_threads() == before
    with pytest.raises(RuntimeError), torch_threads(target):
        raise RuntimeError("restored even on errors")
    assert torch.get_num_threads() == before
    with torch_threads(None):
        assert torch.get_num_threads() == before
