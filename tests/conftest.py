from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
FIXTURES = ROOT / "tests" / "fixtures"
PARITY_DIR = FIXTURES / "parity"


@pytest.fixture(scope="session")
def parity_dir() -> Path:
    """The published code's reference outputs (tests/fixtures/parity): tests must meet them."""
    return PARITY_DIR


@pytest.fixture(scope="session")
def official(parity_dir) -> dict:
    """The published forward's fixture; our own trusted file storing tuples, hence weights_only=False."""
    return torch.load(parity_dir / "ftvsr_official_small.pt", weights_only=False)


@pytest.fixture(scope="session")
def synth_weights(parity_dir):
    """The fixture's weight recipe (`official_checkpoint(schema, fixed)`), imported from the parity folder."""
    spec = importlib.util.spec_from_file_location("synth_weights", parity_dir / "synth_weights.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="session")
def official_pth(official, synth_weights, tmp_path_factory) -> Path:
    """The fixture's weights written in the layout of the released FTVSR_*.pth files."""
    path = tmp_path_factory.mktemp("official") / "FTVSR_synthetic.pth"
    torch.save(synth_weights.official_checkpoint(official["schema"], official["fixed"]), path)
    return path
