"""The stored reference outputs are the published ones, byte for byte (tests/fixtures/README.md)."""

from __future__ import annotations

import hashlib

import pytest
from conftest import FIXTURES

LISTS = sorted(FIXTURES.glob("*.sha256"))


def _entries():
    for listing in LISTS:
        folder = FIXTURES / listing.stem
        for line in listing.read_text().splitlines():
            digest, name = line.split(maxsplit=1)
            yield pytest.param(folder / name, digest, id=f"{listing.stem}/{name.removeprefix('./')}")


def test_every_fixture_folder_has_a_checksum_list() -> None:
    folders = {p.name for p in FIXTURES.iterdir() if p.is_dir() and not p.name.startswith(("_", "."))}
    assert folders <= {listing.stem for listing in LISTS}, "add a <folder>.sha256 for each fixture folder"
    assert LISTS, "no checksum lists under tests/fixtures"


@pytest.mark.parametrize(("path", "digest"), list(_entries()))
def test_fixture_is_unchanged(path, digest: str) -> None:
    assert path.is_file(), f"missing fixture {path}"
    assert hashlib.sha256(path.read_bytes()).hexdigest() == digest, f"{path} differs from the published fixture"
