"""Weights on disk: the released FTVSR / SPyNet checkpoints, and our own model files.

Every file is read with `torch.load(..., weights_only=True)`; a file that needs arbitrary
unpickling is refused (never loaded unsafely). Name or shape mismatches are reported with the
offending names, a few of each kind, and their counts.
"""

from __future__ import annotations

import io
import json
import os
import pickle
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ftvsr.errors import FTVSRError
from ftvsr.io.atomic import write_bytes_atomic
from ftvsr.models.ftvsr import FTVSR
from ftvsr.models.spynet import SPyNet

MODEL_FORMAT = "ftvsr-model"
MODEL_FORMAT_VERSION = 1
_SHOWN = 5  # names listed per kind of mismatch


def _load(path: str | os.PathLike, map_location: str | torch.device = "cpu") -> object:
    path = Path(path)
    if not path.is_file():
        raise FTVSRError(f"checkpoint not found: {path}")
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except Exception as err:  # a damaged pickle raises whatever it trips on (KeyError, IndexError, ...)
        first_line = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        if isinstance(err, pickle.UnpicklingError) and "weights only load failed" in str(err).lower():
            raise FTVSRError(
                f"{path}: refused by torch.load(weights_only=True) -- it holds objects other than "
                f"tensors and plain containers, and is not loaded unsafely"
            ) from err
        raise FTVSRError(f"{path}: not a readable PyTorch checkpoint ({type(err).__name__}: {first_line})") from err


def _listing(names: list[str]) -> str:
    shown = ", ".join(names[:_SHOWN])
    return f"{len(names)} ({shown}{', ...' if len(names) > _SHOWN else ''})"


def check_state_dict(module: nn.Module, state: Mapping[str, torch.Tensor], source: str) -> None:
    """Raise FTVSRError unless `state` has exactly the names and shapes of `module.state_dict()`."""
    expected = module.state_dict()
    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected]
    mis_shaped = [
        f"{k} {tuple(state[k].shape)} != {tuple(v.shape)}"
        for k, v in expected.items()
        if k in state and isinstance(state[k], torch.Tensor) and state[k].shape != v.shape
    ]
    not_tensors = [k for k in state if k in expected and not isinstance(state[k], torch.Tensor)]
    problems = []
    if missing:
        problems.append(f"missing {_listing(missing)}")
    if unexpected:
        problems.append(f"unexpected {_listing(unexpected)}")
    if mis_shaped:
        problems.append(f"mis-shaped {_listing(mis_shaped)}")
    if not_tensors:
        problems.append(f"not tensors {_listing(not_tensors)}")
    if problems:
        raise FTVSRError(f"{source} does not match {type(module).__name__}: " + "; ".join(problems))


def _state_dict_of(checkpoint: object, path: Path) -> dict:
    if not isinstance(checkpoint, Mapping):
        raise FTVSRError(f"{path}: expected a dict checkpoint, got {type(checkpoint).__name__}")
    state = checkpoint.get("state_dict", checkpoint)
    if not isinstance(state, Mapping):
        raise FTVSRError(f"{path}: 'state_dict' is a {type(state).__name__}, not a dict of tensors")
    return dict(state)


def load_official_weights(model: FTVSR, path: str | os.PathLike) -> FTVSR:
    """Load a released mmediting FTVSR checkpoint (`FTVSR_REDS.pth`, `FTVSR_Vimeo90K.pth`) into `model`.

    The file is `{"state_dict": {"generator.<name>": tensor, ...}, ...}`; names outside
    `generator.` (the restorer's `step_counter`) are ignored, the generator's are loaded
    strictly. `model` must be built with the matching configuration (the published defaults
    for the released files). Returns `model`.
    """
    path = Path(path)
    state = _state_dict_of(_load(path), path)
    prefix = "generator."
    if any(k.startswith(prefix) for k in state):
        state = {k[len(prefix) :]: v for k, v in state.items() if k.startswith(prefix)}
    check_state_dict(model, state, str(path))
    model.load_state_dict(state, strict=True)
    return model


def load_spynet_weights(spynet: SPyNet, path: str | os.PathLike) -> SPyNet:
    """Load OpenMMLab's pretrained SPyNet (`spynet_20210409-c6c1bd09.pth`) into `spynet`.

    mmedit's SPyNet file holds the 6 x 5 convolutions as `basic_module.<l>.basic_module.<j>.conv.*`
    (under `state_dict` or at top level, possibly with a `module.` or `spynet.` prefix) and no
    normalisation buffers: `mean` / `std` keep their ImageNet values unless the file has them.
    """
    path = Path(path)
    state = _state_dict_of(_load(path), path)
    for prefix in ("module.", "generator.spynet.", "spynet."):
        if state and all(k.startswith(prefix) for k in state):
            state = {k[len(prefix) :]: v for k, v in state.items()}
    buffers = {k: v for k, v in spynet.state_dict().items() if k in ("mean", "std")}
    state = {**buffers, **state}
    check_state_dict(spynet, state, str(path))
    spynet.load_state_dict(state, strict=True)
    return spynet


def _sorted_dicts(value: Any) -> Any:
    """`value` with every dict in it (at any depth) rebuilt with its keys sorted."""
    if isinstance(value, Mapping):
        return {key: _sorted_dicts(value[key]) for key in sorted(value, key=str)}
    if isinstance(value, (list, tuple)):
        return type(value)(_sorted_dicts(item) for item in value)
    return value


def model_bytes(model: FTVSR, metadata: Mapping | None = None) -> bytes:
    """The bytes `save_model` writes: the same model and metadata give the same bytes.

    torch.save is deterministic for a given object, except that it names the zip's records
    after the file it writes to; serialised to memory they are all named `archive/...`,
    whatever the path. The config's and metadata's dicts are written with sorted keys, so the
    order in which the caller built them does not matter.
    """
    metadata = dict(metadata or {})
    try:
        json.dumps(metadata)
    except TypeError as err:
        raise FTVSRError(f"save_model metadata must be JSON-serialisable: {err}") from err
    model = getattr(model, "module", model)  # DDP
    model = getattr(model, "_orig_mod", model)  # torch.compile
    payload = {
        "format": MODEL_FORMAT,
        "version": MODEL_FORMAT_VERSION,
        "config": _sorted_dicts(model.config),
        "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
        "metadata": _sorted_dicts(metadata),
    }
    buffer = io.BytesIO()
    torch.save(payload, buffer)
    return buffer.getvalue()


def save_model(model: FTVSR, path: str | os.PathLike, metadata: Mapping | None = None) -> Path:
    """Write `model` (its config, weights and JSON-like `metadata`) atomically to `path`.

    The file loads with `FTVSR.from_checkpoint(path)` and `torch.load(weights_only=True)`.
    Its bytes depend only on the model and `metadata`, not on the path or the time
    (`model_bytes`): identical training runs give identical files, and DVC hashes that repeat.
    So `metadata` must hold nothing that changes from run to run (a run id, a date, a host, an
    absolute path); such things belong in the MLflow run, which records the file's hash.
    """
    path = Path(path)
    write_bytes_atomic(path, model_bytes(model, metadata))
    return path


def _own_checkpoint(path: Path, map_location) -> dict:
    checkpoint = _load(path, map_location)
    if not isinstance(checkpoint, Mapping) or checkpoint.get("format") != MODEL_FORMAT:
        raise FTVSRError(
            f"{path}: not a model file written by ftvsr.models.save_model (no format "
            f"{MODEL_FORMAT!r}); for a released mmediting checkpoint use load_official_weights"
        )
    if checkpoint.get("version") != MODEL_FORMAT_VERSION:
        raise FTVSRError(
            f"{path}: model file version {checkpoint.get('version')!r}, this code reads {MODEL_FORMAT_VERSION}"
        )
    for key in ("config", "state_dict"):
        if not isinstance(checkpoint.get(key), Mapping):
            raise FTVSRError(f"{path}: model file has no {key!r} dict")
    return dict(checkpoint)


def load_model(path: str | os.PathLike, map_location: str | torch.device = "cpu") -> FTVSR:
    """Rebuild the model saved by `save_model`: FTVSR(**config) with its weights, in eval mode."""
    path = Path(path)
    checkpoint = _own_checkpoint(path, map_location)
    try:
        model = FTVSR(**checkpoint["config"])
    except TypeError as err:
        raise FTVSRError(f"{path}: config {checkpoint['config']} does not fit FTVSR ({err})") from err
    load_model_weights(model, path, map_location=map_location, _checkpoint=checkpoint)
    return model.to(map_location).eval()


def load_model_weights(
    model: FTVSR, path: str | os.PathLike, map_location: str | torch.device = "cpu", _checkpoint: dict | None = None
) -> FTVSR:
    """Load the weights of a `save_model` file into an existing `model` (same architecture and size)."""
    path = Path(path)
    checkpoint = _checkpoint if _checkpoint is not None else _own_checkpoint(path, map_location)
    state = dict(checkpoint["state_dict"])
    check_state_dict(model, state, str(path))
    model.load_state_dict(state, strict=True)
    return model


def read_metadata(path: str | os.PathLike) -> dict:
    """The `metadata` dict stored by `save_model` (and its `config`, under key 'config')."""
    checkpoint = _own_checkpoint(Path(path), "cpu")
    return {**dict(checkpoint.get("metadata") or {}), "config": dict(checkpoint["config"])}


# The published configs differ only in the keyframe stride (configs/FTVSR_reds4.py: 3, FTVSR_vimeo90k.py: 1).
RELEASED_CONFIGS: dict[str, dict[str, Any]] = {"reds": {"keyframe_stride": 3}, "vimeo90k": {"keyframe_stride": 1}}


def load_released(path: str | os.PathLike, dataset: str = "reds", map_location: str | torch.device = "cpu") -> FTVSR:
    """A released checkpoint (`FTVSR_REDS.pth`: dataset "reds", `FTVSR_Vimeo90K.pth`: "vimeo90k") in the
    published configuration, in eval mode."""
    if dataset not in RELEASED_CONFIGS:
        raise FTVSRError(f"released checkpoints exist for {sorted(RELEASED_CONFIGS)}, got {dataset!r}")
    model = load_official_weights(FTVSR(**RELEASED_CONFIGS[dataset]), path)
    return model.to(map_location).eval()
