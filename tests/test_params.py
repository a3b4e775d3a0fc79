"""params.yaml, profiles and dvc.yaml agree: every shipped profile has every key a stage names,
every setting is either a stage parameter or a declared non-result setting, and `ftvsr profile`
activates a profile (with `--set` overrides) or fails in one line leaving params.yaml alone."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from pydantic import BaseModel

from ftvsr.errors import FTVSRError
from ftvsr.params import NON_RESULT_KEYS, Params, activate_profile, load_params

ROOT = Path(__file__).resolve().parents[1]
PROFILES = sorted(p.stem for p in (ROOT / "profiles").glob("*.yaml"))


def _leaf_keys(model: type[BaseModel], prefix: str = "") -> set[str]:
    """Dotted names of every setting; a nested settings object counts as its own leaves."""
    keys = set()
    for name, field in model.model_fields.items():
        annotation = field.annotation
        if isinstance(annotation, type) and issubclass(annotation, BaseModel) and annotation is not Params:
            keys |= _leaf_keys(annotation, f"{prefix}{name}.")
        else:
            keys.add(f"{prefix}{name}")
    return keys


def _stage_params() -> set[str]:
    stages = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]
    return {key for stage in stages.values() for key in stage.get("do", stage).get("params", [])}


def _covered(key: str, names: set[str]) -> bool:
    return any(key == name or key.startswith(f"{name}.") for name in names)


def test_shipped_profiles_are_valid_and_named_by_their_file():
    assert {"sample", "paper", "paper-vimeo"} <= set(PROFILES)
    for name in PROFILES:
        assert load_params(ROOT / "profiles" / f"{name}.yaml").profile == name


@pytest.mark.parametrize("name", PROFILES)
def test_every_key_a_stage_names_is_in_the_shipped_profile(name):
    """DVC refuses to run a stage whose params key is missing from params.yaml."""
    raw = yaml.safe_load((ROOT / "profiles" / f"{name}.yaml").read_text())
    for key in sorted(_stage_params()):
        node = raw
        for part in key.split("."):
            assert isinstance(node, dict) and part in node, f"profiles/{name}.yaml has no {key!r}, which dvc.yaml names"
            node = node[part]


def test_every_setting_is_a_stage_parameter_or_declared_not_to_change_results():
    stage_params, leaves = _stage_params(), _leaf_keys(Params)
    unclassified = sorted(k for k in leaves if not _covered(k, stage_params) and not _covered(k, NON_RESULT_KEYS))
    assert not unclassified, f"settings no stage depends on, yet not in NON_RESULT_KEYS: {unclassified}"
    both = sorted(
        k for k in NON_RESULT_KEYS if _covered(k, stage_params) or any(_covered(p, {k}) for p in stage_params)
    )
    assert not both, f"declared non-result but a stage parameter: {both}"


def test_activate_profile_with_overrides(tmp_path):
    params_file = tmp_path / "params.yaml"
    params = activate_profile(
        "paper",
        ["model.num_blocks=1", "train.crf_levels=[raw, 25]", "data.crfs=[25]", "evaluate.levels=[25]"],
        profiles_dir=ROOT / "profiles",
        params_file=params_file,
    )
    assert params.model.num_blocks == 1 and params.train.crf_levels == ["raw", 25]
    assert load_params(params_file) == params
    assert params_file.read_text().startswith("# Profile paper with --set model.num_blocks=1")

    activate_profile("sample", profiles_dir=ROOT / "profiles", params_file=params_file)
    assert params_file.read_text() == (ROOT / "profiles" / "sample.yaml").read_text()  # comments kept


@pytest.mark.parametrize(
    "name, overrides, message",
    [
        ("huge", [], "unknown profile 'huge': known ones are"),
        ("paper", ["train.iterations"], "expected KEY=VALUE"),
        ("paper", ["train.iterations=0"], "train.iterations"),
        ("paper", ["train.iterations.x=1"], "'iterations' holds a value"),
        ("paper", ["model.widths=3"], "model.widths"),
        ("paper", ["evaluate.chunk=2", "evaluate.chunk_overlap=2"], r"chunk_overlap \(2\) must be smaller than chunk"),
    ],
)
def test_bad_profile_or_override_is_one_line_and_leaves_params_alone(tmp_path, name, overrides, message):
    params_file = tmp_path / "params.yaml"
    params_file.write_text("untouched")
    with pytest.raises(FTVSRError, match=message) as failure:
        activate_profile(name, overrides, profiles_dir=ROOT / "profiles", params_file=params_file)
    assert "\n" not in str(failure.value)
    assert params_file.read_text() == "untouched"


def test_sample_profile_keeps_validation_and_test_content_out_of_training():
    data = load_params(Path("profiles/sample.yaml")).data

    def sources(clips):
        return {getattr(data.sample[c], "image", None) or data.sample[c].video for c in clips}

    def content(clips):  # a whole photograph, or one frame of a video
        units = set()
        for name in clips:
            clip = data.sample[name]
            if hasattr(clip, "image"):
                units.add(clip.image)
            else:
                units.update((clip.video, k) for k in range(clip.first_frame, clip.first_frame + clip.num_frames))
        return units

    training = sources(data.train_clips)
    assert sources(data.test_sets["natural_val"]) == {"chelsea", "coffee", "bigbuckbunny.mp4"}
    assert sources(data.test_sets["carphone"]) == {"carphone_pristine.mp4"}
    assert "carphone_pristine.mp4" not in training
    for held_out in data.test_sets.values():
        assert not content(held_out) & content(data.train_clips)
    assert not set(data.train_clips) & {c for clips in data.test_sets.values() for c in clips}
    assert len(training) == 8  # bigbuckbunny and seven photographs
