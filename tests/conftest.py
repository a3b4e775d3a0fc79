from __future__ import annotations

import importlib.util
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
FIXTURES = ROOT / "tests" / "fixtures"
PARITY_DIR = FIXTURES / "parity"

# `make test` runs one pytest-xdist worker per core. Each worker, and every process it starts,
# then uses one torch thread: two spinning threads per process on shared cores run up to 10x slower.
if os.environ.get("PYTEST_XDIST_WORKER"):
    os.environ["OMP_NUM_THREADS"] = "1"
    torch.set_num_threads(1)


# The longest test files (minutes each) start first, so that pytest-xdist's workers finish together.
LONGEST_FIRST = ("test_paper.py", "test_pipeline.py", "test_parity_moving.py", "test_models.py", "test_resume.py")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    rank = {name: i for i, name in enumerate(LONGEST_FIRST)}
    items.sort(key=lambda item: rank.get(item.path.name, len(rank)))  # stable: the rest keep their order


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


def assert_matches_published(config: dict, released_pth: Path, clip: torch.Tensor, expected: torch.Tensor) -> None:
    """Our FTVSR(**config) with the released-layout weights, float32 eval, against the published
    forward's output: the parity criterion (tests/fixtures/parity/README.md), mean absolute
    difference <= 1e-4 and at least 99.9 % of values within 1e-3."""
    from ftvsr.models import FTVSR, load_official_weights

    model = FTVSR(**config).float().eval()
    load_official_weights(model, released_pth)
    with torch.no_grad():
        out = model(clip.float())
    assert out.shape == expected.shape
    diff = (out - expected).abs()
    mean, within = diff.mean().item(), (diff <= 1e-3).float().mean().item()
    assert mean <= 1e-4, f"mean abs diff {mean:.3g} (within 1e-3: {within:.4%})"
    assert within >= 0.999, f"within 1e-3: {within:.4%} (mean abs diff {mean:.3g})"


@pytest.fixture(scope="session")
def prefect_api_url(tmp_path_factory) -> Iterator[str]:
    """One `prefect server start` for the whole session (pipelines.prefect_server), as `make repro`
    runs `dvc repro`: every stage process talks to it instead of starting its own."""
    from pipelines.prefect_server import prefect_server

    with prefect_server(home=tmp_path_factory.mktemp("prefect-home")) as url:
        yield url
