"""Resuming a training: which checkpoint may be resumed (run identity, data fingerprint), what pruning
may delete, exact resume (RNG states, sampler position, optimizer and schedule, phases, DataLoader
workers, a killed process, 2 gloo processes), MLflow steps once each, a full disk.

Each exact-resume test compares a resumed run with an uninterrupted one bit for bit, on the CPU. In
the docstrings, "catches" names the change to `ftvsr.train` that the test was seen to fail under.
"""

from __future__ import annotations

import errno
import json
import logging
import math
import os
import random
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from test_train import ROOT, TinyClips, _csv_rows, _weights, tiny_model, tiny_train

import ftvsr.train as T
from ftvsr import tracking
from ftvsr.errors import FTVSRError
from ftvsr.io.frames import write_clip
from ftvsr.io.lmdb_store import pack_lmdb
from ftvsr.launch import run_training
from ftvsr.models import FTVSR
from ftvsr.params import MlflowSettings, ModelSettings, TrainSettings
from ftvsr.train import (
    RESUMABLE_CHANGES,
    data_fingerprint,
    list_checkpoints,
    load_checkpoint,
    main,
    run_identity,
    train,
)


@pytest.fixture(scope="module")
def mlflow_store(tmp_path_factory):
    """A SQLite MLflow store shared by this file's tests (created once: it takes seconds)."""
    root = tmp_path_factory.mktemp("mlflow")

    def settings(experiment: str) -> MlflowSettings:
        return MlflowSettings(
            tracking_uri=f"sqlite:///{root / 'mlflow.db'}",
            artifact_location=str(root / "artifacts"),
            experiment=experiment,
        )

    tracking.configure(settings("default"))
    return settings


KILLED_RUN = """
import json, os, signal, sys
import ftvsr.train as T
from ftvsr.params import MlflowSettings, ModelSettings, TrainSettings

cfg = json.loads(open(sys.argv[1]).read())
set_learning_rate = T.set_learning_rate

def killed_at(optimizer, iteration, scheduler):
    if iteration == cfg["kill_at"]:
        os.kill(os.getpid(), signal.SIGKILL)  # no clean-up of any kind, as a crash or an OOM kill
    return set_learning_rate(optimizer, iteration, scheduler)

T.set_learning_rate = killed_at
T.train(ModelSettings(**cfg["model"]), TrainSettings(**cfg["train"]), gt_lmdb=cfg["gt"], lq_lmdbs=cfg["lq"],
        out_model=cfg["out"], work_dir=cfg["work"], mlflow_settings=MlflowSettings(**cfg["mlflow"]), progress=False)
"""


# sitecustomize for torchrun's workers: each process kills itself at its third optimizer step.
KILL_AT_THIRD_STEP = """
import os, signal
import torch

def _kill_at_third(step):
    calls = []

    def counted(self, *args, **kwargs):
        calls.append(1)
        if len(calls) == 3:
            os.kill(os.getpid(), signal.SIGKILL)
        return step(self, *args, **kwargs)

    return counted

torch.optim.Adam.step = _kill_at_third(torch.optim.Adam.step)
"""


class Interrupted(BaseException):
    """A crash in the middle of training (raised from inside the loop)."""


def interrupt_at(monkeypatch, iteration: int) -> None:
    """Make the next `train` stop with `Interrupted` when it reaches 0-based `iteration`."""
    set_learning_rate = T.set_learning_rate

    def stopping(optimizer, i, scheduler):
        if i == iteration:
            raise Interrupted(i)
        return set_learning_rate(optimizer, i, scheduler)

    monkeypatch.setattr(T, "set_learning_rate", stopping)


def assert_same_run(a: T.TrainResult, b: T.TrainResult) -> None:
    """Loss and lr of every iteration, and every weight, bit for bit."""
    assert a.loss_csv.read_text() == b.loss_csv.read_text()
    wa, wb = _weights(a.model_path), _weights(b.model_path)
    assert wa.keys() == wb.keys()
    different = [k for k in wa if not torch.equal(wa[k], wb[k])]
    assert not different, different[:5]


def make_lmdbs(root: Path, seed: int = 0, clips: int = 1) -> Path:
    """The pack stage's layout: `root/{hr,raw,15}.lmdb`, clips of 6 frames, GT 80x80, LQ 20x20."""
    rng = np.random.default_rng(seed)
    sets = {"hr": [], "raw": [], "15": []}
    for _ in range(clips):
        gt = rng.integers(0, 256, (6, 80, 80, 3), dtype=np.uint8)
        raw = gt.reshape(6, 20, 4, 20, 4, 3).mean(axis=(2, 4)).round().astype(np.uint8)
        crf15 = np.clip(raw.astype(int) + rng.integers(-8, 9, raw.shape), 0, 255).astype(np.uint8)
        for name, frames in (("hr", gt), ("raw", raw), ("15", crf15)):
            sets[name].append(frames)
    for name, frames_of_clips in sets.items():
        for c, frames in enumerate(frames_of_clips):
            write_clip(root / "sets" / name / f"clip{c}", frames)
        pack_lmdb(root / "sets" / name, root / f"{name}.lmdb", progress=False)
    return root


@pytest.fixture(scope="module")
def lmdb_dir(tmp_path_factory) -> Path:
    return make_lmdbs(tmp_path_factory.mktemp("lmdb"))


def lmdb_paths(root: Path) -> dict:
    return {"gt_lmdb": root / "hr.lmdb", "lq_lmdbs": {"raw": root / "raw.lmdb", 15: root / "15.lmdb"}}


def write_params(path: Path, model: ModelSettings, settings: TrainSettings, mlflow_settings=None) -> Path:
    params = {
        "profile": "resume-test",
        "data": {"crfs": [15]},
        "model": model.model_dump(mode="json"),
        "train": settings.model_dump(mode="json"),
        "evaluate": {"datasets": [], "levels": ["raw"]},
    }
    if mlflow_settings is not None:
        params["mlflow"] = mlflow_settings.model_dump()
    path.write_text(json.dumps(params))
    return path


# ---------------------------------------------------------------- which checkpoint is resumed


def test_run_identity_ignores_exactly_the_resumable_settings():
    schedule = {"periods": [10], "restart_weights": [1.0], "min_lr": 1e-7}
    base = run_identity(tiny_model(), tiny_train(scheduler=schedule), {"d": 1}, 1)
    resumable = dict(
        iterations=8, log_every=3, eval_every=5, checkpoint_every=3, num_workers=2, threads=2, max_nonfinite_steps=9
    )
    assert set(resumable) == RESUMABLE_CHANGES
    assert run_identity(tiny_model(), tiny_train(**resumable, scheduler=schedule), {"d": 1}, 1) == base
    for key, value in {"seed": 1, "batch_size": 1, "fix_iter": 1, "crf_levels": ["raw"], "grad_clip": 1.0}.items():
        assert run_identity(tiny_model(), tiny_train(**{key: value}, scheduler=schedule), {"d": 1}, 1) != base, key
    assert run_identity(tiny_model(), tiny_train(scheduler={**schedule, "min_lr": 0}), {"d": 1}, 1) != base
    assert run_identity(tiny_model(n_heads=4), tiny_train(scheduler=schedule), {"d": 1}, 1) != base
    assert run_identity(tiny_model(), tiny_train(scheduler=schedule), {"d": 2}, 1) != base
    assert run_identity(tiny_model(), tiny_train(scheduler=schedule), {"d": 1}, 2) != base


def test_checkpoint_of_another_configuration_is_an_error(tmp_path):
    kwargs = dict(dataset=TinyClips(), out_model=tmp_path / "m.pt", work_dir=tmp_path / "work", progress=False)
    schedule = {"periods": [10], "restart_weights": [1.0]}
    train(tiny_model(), tiny_train(iterations=2, scheduler=schedule), **kwargs)
    with pytest.raises(FTVSRError, match=r"another run \(train.optimizer.lr: 0.001 -> 0.002\)"):
        train(tiny_model(), tiny_train(iterations=2, scheduler=schedule, optimizer={"lr": 2e-3}), **kwargs)
    with pytest.raises(FTVSRError, match=r"another run \(model.mid_channels: 8 -> 16\)"):
        train(tiny_model(mid_channels=16), tiny_train(iterations=2, scheduler=schedule), **kwargs)
    with pytest.raises(FTVSRError, match=r"another run \(data.size: 4 -> 5\)"):
        train(tiny_model(), tiny_train(iterations=2, scheduler=schedule), **{**kwargs, "dataset": TinyClips(n=5)})
    # settings that do not change the computation may differ; more iterations continue the run
    result = train(tiny_model(), tiny_train(iterations=3, log_every=2, scheduler=schedule), **kwargs)
    assert result.start_iteration == 2 and result.iterations == 3


def test_checkpoint_of_other_data_is_not_resumed(tmp_path):
    """The LMDBs' content is part of the run identity (today's code compared only the dataset's
    length, resumed the old final checkpoint, ran zero iterations and wrote the old weights)."""
    data = make_lmdbs(tmp_path / "data", seed=0)
    fingerprint = data_fingerprint(**lmdb_paths(data))
    kwargs = dict(**lmdb_paths(data), out_model=tmp_path / "m.pt", work_dir=tmp_path / "work", progress=False)
    train(tiny_model(), tiny_train(iterations=2), **kwargs)
    # the same clip and frame names and sizes, other pixels (as after a change of data.degradation,
    # data.compress.* or of a clip's frames): the same length, another fingerprint
    make_lmdbs(tmp_path / "data", seed=1)
    changed = data_fingerprint(**lmdb_paths(data))
    assert changed["gt"] != fingerprint["gt"] and changed["lq"]["15"] != fingerprint["lq"]["15"]
    with pytest.raises(FTVSRError, match=r"another run \(data.gt: \w{12} -> \w{12}, data.lq.15: "):
        train(tiny_model(), tiny_train(iterations=2), **kwargs)
    # a digest recorded at pack time stands for data.mdb (no full hash of a large LMDB)
    (data / "raw.lmdb" / T.CONTENT_DIGEST_FILE).write_text("abc\n")
    assert data_fingerprint(**lmdb_paths(data))["lq"]["raw"] != changed["lq"]["raw"]


def test_launcher_continues_with_more_iterations_and_starts_afresh_on_new_data(tmp_path, mlflow_store, caplog):
    """Through `run_training` (the train stage): the checkpoint folder is chosen by the same run
    identity that the loop checks. Today's launcher hashed every train setting (raising
    `iterations` started from scratch) and ignored the data (new data resumed the old run)."""
    data = make_lmdbs(tmp_path / "data", seed=0)
    params, work, out = tmp_path / "params.yaml", tmp_path / "checkpoints", tmp_path / "models" / "m.pt"
    model, mlflow_settings = tiny_model(), mlflow_store("launcher")
    schedule = {"periods": [4], "restart_weights": [1.0], "min_lr": 1e-7}
    write_params(params, model, tiny_train(iterations=2, scheduler=schedule), mlflow_settings)
    first_run = run_training(params, data, out, work, progress=False)
    write_params(params, model, tiny_train(iterations=4, scheduler=schedule), mlflow_settings)
    with caplog.at_level(logging.INFO, logger="ftvsr.train"):
        assert run_training(params, data, out, work, progress=False) == first_run  # the same MLflow run
    assert "(iteration 2 of 4)" in caplog.text
    assert len(list(work.iterdir())) == 1
    continued = _weights(out)

    caplog.clear()
    make_lmdbs(tmp_path / "data", seed=1)  # new pixels, same names and sizes
    with caplog.at_level(logging.INFO, logger="ftvsr.train"):
        assert run_training(params, data, out, work, progress=False) != first_run
    assert "resuming" not in caplog.text
    assert len(list(work.iterdir())) == 2
    fresh = _weights(out)
    assert not all(torch.equal(continued[k], fresh[k]) for k in fresh)


# ---------------------------------------------------------------- pruning


def test_pruning_deletes_only_the_runs_own_older_checkpoints(tmp_path, caplog):
    """Unreadable leftovers of an older run, numbered above the new run's checkpoints, are reported
    and left alone; the run keeps its own newest two (today's pruning kept the two highest numbers
    and deleted every checkpoint the new run wrote)."""
    work = tmp_path / "work"
    (work / "checkpoints").mkdir(parents=True)
    for name in ("iter_00001000.pt", "iter_00000998.pt"):
        (work / "checkpoints" / name).write_bytes(b"not a checkpoint")
    kwargs = dict(dataset=TinyClips(), out_model=tmp_path / "m.pt", work_dir=work, progress=False)
    schedule = {"periods": [8], "restart_weights": [1.0]}
    with caplog.at_level(logging.WARNING, logger="ftvsr.train"):
        result = train(tiny_model(), tiny_train(iterations=6, checkpoint_every=2, scheduler=schedule), **kwargs)
    assert result.start_iteration == 0
    assert "iter_00001000.pt: unreadable checkpoint" in caplog.text and "iter_00000998.pt" in caplog.text
    names = [p.name for p in list_checkpoints(work)]
    assert names == ["iter_00001000.pt", "iter_00000998.pt", "iter_00000006.pt", "iter_00000004.pt"]
    # resumed, the run goes on pruning its own (those of the interrupted session included)
    result = train(tiny_model(), tiny_train(iterations=8, checkpoint_every=2, scheduler=schedule), **kwargs)
    assert result.start_iteration == 6
    names = [p.name for p in list_checkpoints(work)]
    assert names == ["iter_00001000.pt", "iter_00000998.pt", "iter_00000008.pt", "iter_00000006.pt"]
    assert (work / "checkpoints" / "iter_00001000.pt").read_bytes() == b"not a checkpoint"


# ---------------------------------------------------------------- exact resume


class NoisyClips(TinyClips):
    """TinyClips whose LQ gets noise from the global torch, NumPy and Python generators (as library
    code drawing from them would): a resumed run matches only if all three were restored."""

    def __getitem__(self, index: int) -> dict:
        sample = super().__getitem__(index)
        noise = 0.01 * (torch.rand(()).item() + np.random.rand() + random.random())  # noqa: NPY002
        return {"lq": sample["lq"] + noise, "gt": sample["gt"]}


def test_resume_restores_the_global_random_generators(tmp_path, monkeypatch):
    """Catches: `set_rng_state(...)` replaced by `pass` (and the restore of any one generator dropped)."""
    settings = tiny_train(iterations=4, checkpoint_every=2)
    kwargs = dict(dataset=NoisyClips(), progress=False)
    straight = train(tiny_model(), settings, out_model=tmp_path / "a.pt", work_dir=tmp_path / "a", **kwargs)
    interrupt_at(monkeypatch, 3)
    with pytest.raises(Interrupted):
        train(tiny_model(), settings, out_model=tmp_path / "b.pt", work_dir=tmp_path / "b", **kwargs)
    monkeypatch.undo()
    resumed = train(tiny_model(), settings, out_model=tmp_path / "b.pt", work_dir=tmp_path / "b", **kwargs)
    assert resumed.start_iteration == 2
    assert_same_run(straight, resumed)


def test_resume_across_phase_boundaries_with_schedule_and_sampler(tmp_path, monkeypatch):
    """Two interruptions: the run resumes at 2, trains through fix_ttvsr (3), resumes at 4, trains
    through fix_iter (5, SPyNet), with a cosine lr and clips reshuffled every 2 iterations.
    Catches: the sampler starting at 0 instead of the checkpoint's iteration; the optimizer state
    not restored; the schedule restarted at the resume (lr of iteration - start); the phase not
    re-applied after a resume (applied only when it changes)."""
    model = tiny_model(flow="spynet")
    settings = tiny_train(iterations=6, batch_size=1, checkpoint_every=2, fix_ttvsr=3, fix_iter=5)
    kwargs = dict(dataset=TinyClips(), progress=False)
    straight = train(model, settings, out_model=tmp_path / "a.pt", work_dir=tmp_path / "a", **kwargs)
    resumed_kwargs = dict(out_model=tmp_path / "b.pt", work_dir=tmp_path / "b", **kwargs)
    for stop in (3, 5):
        interrupt_at(monkeypatch, stop)
        with pytest.raises(Interrupted):
            train(model, settings, **resumed_kwargs)
        monkeypatch.undo()
    resumed = train(model, settings, **resumed_kwargs)
    assert resumed.start_iteration == 4
    assert_same_run(straight, resumed)


def test_resume_with_dataloader_workers(tmp_path, lmdb_dir, monkeypatch):
    """Two worker processes build the samples (from the real LMDBs): the resumed loader starts at
    the checkpoint's iteration. Catches: the sampler starting at 0."""
    settings = tiny_train(iterations=4, checkpoint_every=2, num_workers=2)
    kwargs = dict(**lmdb_paths(lmdb_dir), progress=False)
    straight = train(tiny_model(), settings, out_model=tmp_path / "a.pt", work_dir=tmp_path / "a", **kwargs)
    interrupt_at(monkeypatch, 3)
    with pytest.raises(Interrupted):
        train(tiny_model(), settings, out_model=tmp_path / "b.pt", work_dir=tmp_path / "b", **kwargs)
    monkeypatch.undo()
    resumed = train(tiny_model(), settings, out_model=tmp_path / "b.pt", work_dir=tmp_path / "b", **kwargs)
    assert resumed.start_iteration == 2
    assert_same_run(straight, resumed)


def test_resume_after_a_kill_reproduces_the_uninterrupted_run_bitwise(tmp_path, lmdb_dir, mlflow_store, caplog):
    """A real process killed with SIGKILL after its checkpoint of step 2 and after logging step 3;
    the resumed process logs every step once (today's code logged step 3 twice)."""
    paths = lmdb_paths(lmdb_dir)
    model, settings = tiny_model(), tiny_train(iterations=6, checkpoint_every=2)
    straight = train(model, settings, **paths, out_model=tmp_path / "a" / "m.pt", work_dir=tmp_path / "a" / "work")

    work, out, mlflow_settings = tmp_path / "b" / "work", tmp_path / "b" / "m.pt", mlflow_store("resume")
    config = {
        "model": model.model_dump(mode="json"),
        "train": settings.model_dump(mode="json"),
        "kill_at": 3,
        "gt": str(paths["gt_lmdb"]),
        "lq": {str(k): str(v) for k, v in paths["lq_lmdbs"].items()},
        "work": str(work),
        "out": str(out),
        "mlflow": mlflow_settings.model_dump(),
    }
    (tmp_path / "config.json").write_text(json.dumps(config))
    (tmp_path / "killed_run.py").write_text(KILLED_RUN)
    done = subprocess.run(
        [sys.executable, str(tmp_path / "killed_run.py"), str(tmp_path / "config.json")],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == -signal.SIGKILL, done.stderr[-2000:]
    assert [p.name for p in list_checkpoints(work)] == ["iter_00000002.pt"]
    assert not out.exists()
    killed_run_id = load_checkpoint(work / "checkpoints" / "iter_00000002.pt")["mlflow_run_id"]
    # a newer checkpoint, truncated (as by a full disk outside the atomic write): skipped with a warning
    (work / "checkpoints" / "iter_00000004.pt").write_bytes(
        (work / "checkpoints" / "iter_00000002.pt").read_bytes()[:5000]
    )

    with caplog.at_level(logging.WARNING, logger="ftvsr.train"):
        resumed = train(
            model, settings, **paths, out_model=out, work_dir=work, mlflow_settings=mlflow_settings, progress=False
        )
    assert "iter_00000004.pt: unreadable checkpoint" in caplog.text
    assert resumed.start_iteration == 2
    assert_same_run(straight, resumed)

    import mlflow

    assert resumed.run_id == killed_run_id
    runs = mlflow.search_runs(experiment_names=["resume"], output_format="list")
    assert [r.info.run_id for r in runs] == [killed_run_id] and runs[0].info.status == "FINISHED"
    client = mlflow.MlflowClient()
    for key in ("loss", "lr"):
        assert sorted(m.step for m in client.get_metric_history(killed_run_id, key)) == [1, 2, 3, 4, 5, 6], key
    assert runs[0].data.params["train.optimizer.lr"] == "0.001"
    assert runs[0].data.tags["stage"] == "train" and runs[0].data.tags["dvc_data_version"].startswith("files-")
    artifacts = {a.path for a in client.list_artifacts(killed_run_id, "checkpoint")}
    assert artifacts == {"checkpoint/m.pt", "checkpoint/config.json"}
    assert runs[0].data.tags[tracking.MODEL_SHA_TAG] == tracking.file_sha256(out)

    # The finished training again, tracked in a new store: a new run, with the curves it had so far.
    fresh = MlflowSettings(
        tracking_uri=f"sqlite:///{tmp_path / 'fresh.db'}", artifact_location=str(tmp_path / "fresh"), experiment="fresh"
    )
    again = train(model, settings, **paths, out_model=out, work_dir=work, mlflow_settings=fresh, progress=False)
    assert again.start_iteration == 6 and again.run_id != killed_run_id
    client = mlflow.MlflowClient(tracking.resolve_tracking_uri(fresh.tracking_uri))
    for key in ("loss", "lr"):
        assert sorted(m.step for m in client.get_metric_history(again.run_id, key)) == [1, 2, 3, 4, 5, 6], key


def test_ddp_two_processes_killed_and_resumed_match_the_uninterrupted_run(
    tmp_path, lmdb_dir, mlflow_store, monkeypatch
):
    """2 gloo processes through the launcher (torchrun), batch 1 each, 4 iterations:

    - after 2 iterations they have trained as one process with the global batch of 2 (same
      samples; the weights equal up to the sums' roundoff, see below);
    - both processes killed with SIGKILL at their third optimizer step (after the checkpoint of
      step 2), then resumed by the launcher, give bit for bit the uninterrupted run: both ranks
      restore their own RNG states and sampler positions, and gloo sums in a fixed order;
    - rank 0 alone wrote: one checkpoint series, one MLflow run with world_size 2, each step once.
    """
    import mlflow

    model, mlflow_settings = tiny_model(), mlflow_store("ddp")
    settings = tiny_train(iterations=4, batch_size=1, checkpoint_every=2, nproc=2)
    params = write_params(tmp_path / "params.yaml", model, settings, mlflow_settings)
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    straight = tmp_path / "straight" / "m.pt"
    # train.nproc from the params, as the train stage (`dvc repro`) runs it; later calls pass it explicitly
    run_id = run_training(params, lmdb_dir, straight, tmp_path / "straight" / "work", progress=False)
    (folder,) = (tmp_path / "straight" / "work").iterdir()
    assert [p.name for p in list_checkpoints(folder)] == ["iter_00000004.pt", "iter_00000002.pt"]
    at_2 = load_checkpoint(folder / "checkpoints" / "iter_00000002.pt")
    assert len(at_2["rng"]) == 2 and at_2["checkpoints"] == [2]

    single = train(
        model,
        settings.model_copy(update={"batch_size": 2, "iterations": 2}),
        **lmdb_paths(lmdb_dir),
        out_model=tmp_path / "one" / "m.pt",
        work_dir=tmp_path / "one" / "work",
        progress=False,
    )
    ddp_rows, single_rows = _csv_rows(straight.with_name("m_loss.csv"))[:2], _csv_rows(single.loss_csv)
    assert [r[0] for r in ddp_rows] == [r[0] for r in single_rows] == [1, 2]
    assert ddp_rows[0][1] == pytest.approx(single_rows[0][1], rel=1e-6)  # same samples, before any update
    assert ddp_rows[1][1] == pytest.approx(single_rows[1][1], rel=1e-5)  # after one averaged update
    # Adam's first steps move every weight by about +-lr whatever the size of its gradient, so the
    # few weights whose gradient is at roundoff level (1e-13) may step either way: compare the
    # whole update (measured: 0.5 % of its size; 0.3 % of the weights differ by more than 1e-5)
    ddp, one = at_2["model"], _weights(single.model_path)
    torch.manual_seed(settings.seed)
    initial = FTVSR(**model.model_dump()).state_dict()
    difference = sum(((ddp[k] - one[k]) ** 2).sum() for k in one)
    update = sum(((one[k] - initial[k]) ** 2).sum() for k in one)
    assert math.sqrt(difference / update) < 0.02
    off = sum(((ddp[k] - one[k]).abs() > 1e-5).sum().item() for k in one)
    assert off / sum(w.numel() for w in one.values()) < 0.01

    # Both ranks SIGKILLed at their third optimizer step (a crash, an OOM kill): torchrun's workers
    # run `-m ftvsr.train`, so the kill comes in through a sitecustomize on their PYTHONPATH.
    (tmp_path / "kill").mkdir()
    (tmp_path / "kill" / "sitecustomize.py").write_text(KILL_AT_THIRD_STEP)
    python_path = os.environ.get("PYTHONPATH")
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [str(tmp_path / "kill"), python_path])))
    resumed, killed_work = tmp_path / "killed" / "m.pt", tmp_path / "killed" / "work"
    with pytest.raises(FTVSRError):
        run_training(params, lmdb_dir, resumed, killed_work, nproc=2, progress=False)
    if python_path is None:
        monkeypatch.delenv("PYTHONPATH")
    else:
        monkeypatch.setenv("PYTHONPATH", python_path)
    assert [p.name for p in list_checkpoints(killed_work / folder.name)] == ["iter_00000002.pt"]
    assert not resumed.exists()
    killed_id = load_checkpoint(killed_work / folder.name / "checkpoints" / "iter_00000002.pt")["mlflow_run_id"]
    # the same settings and data are the same training: the killed attempt went on in the first run
    assert run_training(params, lmdb_dir, resumed, killed_work, nproc=2, progress=False) == killed_id == run_id
    assert straight.with_name("m_loss.csv").read_text() == resumed.with_name("m_loss.csv").read_text()
    a, b = _weights(straight), _weights(resumed)
    assert all(torch.equal(a[k], b[k]) for k in a)

    mlflow.set_tracking_uri(tracking.resolve_tracking_uri(mlflow_settings.tracking_uri))
    runs = mlflow.search_runs(experiment_names=["ddp"], output_format="list")
    assert [r.info.run_id for r in runs] == [run_id]  # one run, from rank 0, never a second for the same training
    versions = mlflow.MlflowClient().search_model_versions(f"run_id = '{run_id}'")
    assert len(versions) == 1 and versions[0].name == "ftvsr-resume-test"
    for run in runs:
        assert run.data.params["world_size"] == "2" and run.info.run_name == "train-resume-test"
        steps = sorted(m.step for m in mlflow.MlflowClient().get_metric_history(run.info.run_id, "loss"))
        assert steps == [1, 2, 3, 4]


# ---------------------------------------------------------------- a full disk


def test_full_disk_while_checkpointing_is_one_error_line(tmp_path, lmdb_dir, monkeypatch, capsys):
    """The write of the second checkpoint fails with ENOSPC half-way: `python -m ftvsr.train` exits
    1 with one `error:` line naming the file; the first checkpoint is intact, no temporary file is
    left, no model is written."""
    params = write_params(tmp_path / "params.yaml", tiny_model(), tiny_train(iterations=4, checkpoint_every=2))
    work, out = tmp_path / "work", tmp_path / "m.pt"
    paths = lmdb_paths(lmdb_dir)
    argv = ["--params", str(params), "--gt-lmdb", str(paths["gt_lmdb"]), "--out-model", str(out)]
    argv += ["--work-dir", str(work), "--no-mlflow", "--no-progress"]
    argv += [f"--lq-lmdb={level}={path}" for level, path in paths["lq_lmdbs"].items()]
    save = torch.save

    def full_disk(obj, f, *args, **kwargs):
        if "iter_00000004" in str(f):
            Path(f).write_bytes(b"PK\x03\x04 half a checkpoint")
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(f))
        return save(obj, f, *args, **kwargs)

    monkeypatch.setattr(torch, "save", full_disk)
    assert main(argv) == 1
    err = capsys.readouterr().err
    assert "Traceback" not in err
    errors = [line for line in err.splitlines() if line.startswith("error:")]
    assert errors == [
        f"error: cannot write checkpoint {work / 'checkpoints' / 'iter_00000004.pt'}: No space left on device"
    ]
    assert sorted(p.name for p in (work / "checkpoints").iterdir()) == ["iter_00000002.pt"]
    assert load_checkpoint(work / "checkpoints" / "iter_00000002.pt")["iteration"] == 2
    assert not out.exists()
    # with space again, the run resumes from it
    monkeypatch.undo()
    assert main(argv) == 0 and out.is_file()
    assert [p.name for p in list_checkpoints(work)] == ["iter_00000004.pt", "iter_00000002.pt"]
