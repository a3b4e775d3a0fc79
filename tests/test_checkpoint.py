"""Model files are deterministic: the same model and metadata give the same bytes, whatever the
path, the process or the order in which the metadata was built (so DVC's hash of a model repeats)."""

from __future__ import annotations

import copy
import json
import subprocess
import sys

import pytest
import torch

from ftvsr.models import FTVSR, read_metadata, save_model
from ftvsr.models.checkpoint import model_bytes

TINY = dict(mid_channels=8, num_blocks=1, ftt_channels=64, d_model=32, n_heads=2)
METADATA = {"iterations": 3, "final_loss": 0.25, "nested": {"b": 1, "a": [1, 2]}}

# Builds and saves the same model in a fresh interpreter: another process, heap and time.
_SAVE = """
import json, sys, torch
from ftvsr.models import FTVSR, save_model
torch.manual_seed(0)
save_model(FTVSR(**json.loads(sys.argv[2])), sys.argv[1], metadata=json.loads(sys.argv[3]))
"""


@pytest.fixture(scope="module")
def model() -> FTVSR:
    torch.manual_seed(0)
    return FTVSR(**TINY)


def test_same_model_same_bytes_whatever_the_path_or_process(model, tmp_path):
    first = save_model(model, tmp_path / "a" / "ftvsr.pth", metadata=METADATA)
    second = save_model(model, tmp_path / "b" / "other_name.pt", metadata=METADATA)
    assert first.read_bytes() == second.read_bytes()  # torch.save names its records after the file
    assert first.read_bytes() == model_bytes(model, METADATA)
    command = [sys.executable, "-c", _SAVE, str(tmp_path / "c.pth"), json.dumps(TINY), json.dumps(METADATA)]
    subprocess.run(command, check=True, timeout=300)
    assert (tmp_path / "c.pth").read_bytes() == first.read_bytes()


def test_metadata_order_does_not_change_the_bytes_and_reads_back(model, tmp_path):
    one = model_bytes(model, {"a": 1, "b": {"y": 2, "x": [3, {"q": 1, "p": 2}]}})
    other = model_bytes(model, {"b": {"x": [3, {"p": 2, "q": 1}], "y": 2}, "a": 1})
    assert one == other
    path = save_model(model, tmp_path / "m.pth", metadata={"b": {"y": 2, "x": (3, 4)}, "a": 1})
    assert read_metadata(path)["b"] == {"x": (3, 4), "y": 2}  # values unchanged, only ordered
    assert list(read_metadata(path)) == ["a", "b", "config"]
    rebuilt = FTVSR.from_checkpoint(path)
    assert rebuilt.config == model.config
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in rebuilt.state_dict().items())


def test_different_weights_give_different_bytes(model):
    changed = copy.deepcopy(model)
    with torch.no_grad():
        next(changed.parameters()).add_(1e-3)
    assert model_bytes(changed) != model_bytes(model)
