"""The stage flows under Prefect (a temporary API: `prefect_test_harness`) on tiny frame folders:
one named task per clip, retries for transient errors only, resuming from the partial folder,
parameters rejected before any work, and dvc.yaml's paths mirrored by `stage_paths`."""

from __future__ import annotations

import hashlib
import os
import re
import shlex
import shutil
import time
from pathlib import Path

import numpy as np
import pytest
import yaml
from prefect import get_client
from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId
from prefect.exceptions import ParameterTypeError
from prefect.settings import PREFECT_LOCAL_STORAGE_PATH, temporary_settings
from prefect.testing.utilities import prefect_test_harness

import pipelines.degrade
from ftvsr.data.compress import TABLE_NAME
from ftvsr.data.degrade import degrade_folder
from ftvsr.errors import FTVSRError
from ftvsr.io.frames import list_frames, read_clip, write_clip
from ftvsr.params import load_params
from pipelines._common import PARTIAL, RETRIES, make_task_runner
from pipelines.compress import compress_flow
from pipelines.degrade import degrade_flow
from pipelines.pipeline import STAGES, pipeline_flow, stage_paths, with_crfs

ROOT = Path(__file__).resolve().parents[1]
TRAIN_CLIPS = ("a", "b", "c")


@pytest.fixture(scope="module", autouse=True)
def prefect_api(tmp_path_factory):
    """A temporary Prefect API and result store for every flow in this module."""
    storage = tmp_path_factory.mktemp("prefect-results")
    with prefect_test_harness(server_startup_timeout=60), temporary_settings({PREFECT_LOCAL_STORAGE_PATH: storage}):
        yield


def _frames(t: int, size: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size]
    base = (np.sin(xx / 5 + seed) + np.cos(yy / 7)) * 60 + 128
    frames = [np.clip(base[..., None] + rng.normal(0, 8, (size, size, 3)) + 4 * i, 0, 255) for i in range(t)]
    return np.stack(frames).astype(np.uint8)


@pytest.fixture()
def project(tmp_path) -> dict[str, Path]:
    """An HR root with train/{a,b,c} and test/set1/d (3 frames of 64x64 each), and a params file."""
    hr = tmp_path / "hr"
    for seed, clip in enumerate(TRAIN_CLIPS):
        write_clip(hr / "train" / clip, _frames(3, 64, seed))
    write_clip(hr / "test" / "set1" / "d", _frames(3, 64, 9))
    params = yaml.safe_load((ROOT / "profiles" / "sample.yaml").read_text())
    params["data"].update(crfs=[25], workers=2)
    params["train"]["crf_levels"] = ["raw", 25]
    params["evaluate"]["levels"] = ["raw", 25]
    params_file = tmp_path / "params.yaml"
    params_file.write_text(yaml.safe_dump(params, sort_keys=False))
    load_params(params_file)
    return {"root": tmp_path, "hr": hr, "lr": tmp_path / "lr" / "raw", "params": params_file}


def _task_runs(flow_state, expected: int, timeout_s: float = 20) -> dict[str, object]:
    """The flow run's task runs by name, once all `expected` have reached the API (states arrive as events)."""
    flow_run_id = flow_state.state_details.flow_run_id
    deadline = time.monotonic() + timeout_s
    with get_client(sync_client=True) as client:
        while True:
            runs = client.read_task_runs(flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[flow_run_id])))
            final = [run for run in runs if run.state is not None and run.state.is_final()]
            if len(final) >= expected or time.monotonic() > deadline:
                return {run.name: run for run in final}
            time.sleep(0.3)


def _fingerprint(clip_dir: Path) -> tuple:
    """Changes whenever the clip folder is written again (atomic replace: a new folder)."""
    return (clip_dir.stat().st_ino, clip_dir.stat().st_mtime_ns, [p.stat().st_mtime_ns for p in list_frames(clip_dir)])


def _clip_names() -> list[str]:
    return [f"train/{clip}" for clip in TRAIN_CLIPS] + ["test/set1/d"]


def test_degrade_runs_one_named_task_per_clip_matching_the_library(project, tmp_path):
    state = degrade_flow(project["hr"], project["lr"], project["params"], return_state=True)
    assert state.is_completed()
    assert state.result() == {name: 3 for name in _clip_names()}
    runs = _task_runs(state, expected=4)
    assert set(runs) == {f"degrade {name}" for name in _clip_names()}
    assert all(run.state.name == "Completed" for run in runs.values())

    reference = tmp_path / "reference"
    degrade_folder(project["hr"] / "train", reference, method="bd", progress=False)
    for clip in TRAIN_CLIPS:
        np.testing.assert_array_equal(read_clip(project["lr"] / "train" / clip), read_clip(reference / clip))
    assert read_clip(project["lr"] / "test" / "set1" / "d").shape == (3, 16, 16, 3)


def _partials(project) -> list[Path]:
    return sorted(project["lr"].parent.glob(f"{project['lr'].name}{PARTIAL}*"))


def test_bad_input_fails_at_once_naming_the_clip(project):
    bad_frame = project["hr"] / "train" / "b" / "00000001.png"
    bad_frame.write_bytes(b"not a png")

    state = degrade_flow(project["hr"], project["lr"], project["params"], workers=1, return_state=True)
    assert state.is_failed()
    with pytest.raises(FTVSRError, match=re.escape("00000001.png")) as failure:
        state.result()
    assert "train/b" in str(failure.value) and "\n" not in str(failure.value)
    runs = _task_runs(state, expected=2)
    assert runs["degrade train/b"].state.name == "Failed"
    assert runs["degrade train/b"].run_count == 1  # bad input: no retries
    assert not project["lr"].exists()  # no half-made output: what is done waits in the partial folder
    (partial,) = _partials(project)
    assert (partial / "train" / "a").is_dir() and not (partial / "train" / "b").exists()


def _fail_clip_b(monkeypatch) -> None:
    """Writing clip b fails with an OSError every time, as a full or broken disk would."""
    real = pipelines.degrade.ftvsr.data.degrade.degrade_clip

    def degrade_clip(src_clip, dst_clip, **kwargs):
        if Path(src_clip).name == "b":
            raise OSError(28, "No space left on device")
        return real(src_clip, dst_clip, **kwargs)

    monkeypatch.setattr(pipelines.degrade.ftvsr.data.degrade, "degrade_clip", degrade_clip)
    monkeypatch.setattr(
        pipelines.degrade, "degrade_clip", pipelines.degrade.degrade_clip.with_options(retry_delay_seconds=0)
    )


def test_transient_error_is_retried_then_named_and_a_rerun_finishes_only_what_was_left(project, monkeypatch):
    with monkeypatch.context() as broken:
        _fail_clip_b(broken)
        state = degrade_flow(project["hr"], project["lr"], project["params"], workers=1, return_state=True)
    assert state.is_failed()
    with pytest.raises(FTVSRError, match=rf"train/b failed after {RETRIES + 1} attempts: OSError") as failure:
        state.result()
    assert "\n" not in str(failure.value)
    runs = _task_runs(state, expected=2)
    assert runs["degrade train/b"].run_count == RETRIES + 1
    (partial,) = _partials(project)
    written = {p.name: _fingerprint(p) for p in (partial / "train").iterdir() if p.is_dir() and p.name[0] != "."}
    assert "a" in written and "b" not in written

    state = degrade_flow(project["hr"], project["lr"], project["params"], return_state=True)  # the disk is back
    assert state.is_completed()
    for clip, fingerprint in written.items():
        assert _fingerprint(project["lr"] / "train" / clip) == fingerprint, f"{clip} was done again"
    for name in _clip_names():
        assert len(list_frames(project["lr"] / name)) == 3
    assert not _partials(project)


def test_work_begun_with_other_settings_is_never_resumed(project, monkeypatch):
    with monkeypatch.context() as broken:
        _fail_clip_b(broken)
        degrade_flow(project["hr"], project["lr"], project["params"], workers=1, return_state=True)
    (stale,) = _partials(project)
    assert (stale / "train" / "a").is_dir()
    project["params"].write_text(project["params"].read_text().replace("degradation: bd", "degradation: bi"))
    degrade_flow(project["hr"], project["lr"], project["params"])
    assert not stale.exists() and not _partials(project)
    reference = project["root"] / "reference"
    degrade_folder(project["hr"] / "train", reference, method="bi", progress=False)
    for clip in TRAIN_CLIPS:
        np.testing.assert_array_equal(read_clip(project["lr"] / "train" / clip), read_clip(reference / clip))


def test_a_stage_run_again_outside_dvc_rebuilds_its_output_from_the_current_inputs(project):
    degrade_flow(project["hr"], project["lr"], project["params"])
    assert read_clip(project["lr"] / "train" / "a").shape == (3, 16, 16, 3)
    write_clip(project["hr"] / "train" / "a", _frames(3, 128, 0))  # same frame names, new content
    degrade_flow(project["hr"], project["lr"], project["params"])
    assert read_clip(project["lr"] / "train" / "a").shape == (3, 32, 32, 3)


def test_compress_runs_per_clip_tasks_and_writes_each_sets_bitrate_table(project):
    degrade_flow(project["hr"], project["lr"], project["params"])
    dst = project["root"] / "lr" / "25"
    state = compress_flow(project["lr"], dst, 25, project["params"], return_state=True)
    assert state.is_completed()
    kbps = state.result()
    assert set(kbps) == set(_clip_names()) and all(v > 0 for v in kbps.values())
    runs = _task_runs(state, expected=4)
    assert set(runs) == {f"compress crf 25 {name}" for name in _clip_names()}
    table = (dst / "train" / TABLE_NAME).read_text().splitlines()
    assert len(table) == 1 + len(TRAIN_CLIPS)
    assert (dst / "test" / "set1" / TABLE_NAME).is_file() and (dst / "test" / "set1" / "d.mp4").is_file()


def test_processes_task_runner_gives_the_same_frames(project, tmp_path):
    threads = tmp_path / "threads"
    degrade_flow(project["hr"], threads, project["params"], task_runner="threads", workers=2)
    state = degrade_flow(
        project["hr"], project["lr"], project["params"], task_runner="processes", workers=2, return_state=True
    )
    assert state.is_completed()
    assert set(_task_runs(state, expected=4)) == {f"degrade {name}" for name in _clip_names()}
    for name in _clip_names():
        np.testing.assert_array_equal(read_clip(project["lr"] / name), read_clip(threads / name))


@pytest.mark.parametrize(
    "parameters, error",
    [
        ({"workers": 0}, ParameterTypeError),
        ({"task_runner": "gpu"}, ParameterTypeError),
        ({"src_missing": True}, FTVSRError),
        ({"bad_params": True}, FTVSRError),
    ],
)
def test_invalid_parameters_are_rejected_before_any_work(project, parameters, error):
    src, params_file = project["hr"], project["params"]
    if parameters.pop("src_missing", False):
        src = project["root"] / "no-such-folder"
    if parameters.pop("bad_params", False):
        params_file.write_text(params_file.read_text().replace("degradation: bd", "degradation: blur"))
    with pytest.raises(error) as failure:
        degrade_flow(src, project["lr"], params_file, **parameters)
    if error is FTVSRError:
        assert "\n" not in str(failure.value)
    assert not project["lr"].exists() and not _partials(project)


def test_pipeline_rejects_an_invalid_crf_list_before_any_stage(project):
    with pytest.raises(FTVSRError, match=r"crfs \[15, 15\].*duplicate"):
        pipeline_flow(project["params"], crfs=[15, 15], root=project["root"])
    with pytest.raises(ParameterTypeError, match="crfs"):
        pipeline_flow(project["params"], crfs=[99], root=project["root"])
    with pytest.raises(FTVSRError, match="at least one CRF"):
        pipeline_flow(project["params"], crfs=[], root=project["root"])
    assert not (project["root"] / "data").exists()


def test_crf_override_follows_into_training_and_evaluation_levels(project):
    params = with_crfs(load_params(project["params"]), [35, 15])
    assert params.data.crfs == [35, 15]
    assert params.train.crf_levels == ["raw", 35, 15]
    assert params.evaluate.levels == ["raw", 35, 15]


def test_dask_runner_without_prefect_dask_is_one_clear_error():
    try:
        import prefect_dask  # noqa: F401
    except ImportError:
        with pytest.raises(FTVSRError, match=r"pip install -e '\.\[cluster\]'"):
            make_task_runner("dask", 2)
    else:
        pytest.skip("prefect-dask is installed")
    with pytest.raises(FTVSRError, match="workers"):
        make_task_runner("threads", 0)


def test_stage_paths_agree_with_dvc_yaml():
    """dvc.yaml is the authority for DVC; `stage_paths` mirrors it for the Prefect flows."""
    stages = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]
    assert tuple(stages) == STAGES
    p = stage_paths("PROFILE")
    crf, dataset, level = "25", "DATASET", "LEVEL"
    expected = {
        "fetch": {"--out": p.hr, "--dataset-lr": p.dataset_lr},
        "degrade": {"--src": p.hr, "--dataset-lr": p.dataset_lr, "--dst": p.lr_raw},
        "compress": {"--src": p.lr_raw, "--dst": p.lr(crf)},
        "pack": {"--hr": p.hr_train, "--lr": p.lr_root, "--dst": p.lmdb},
        "train": {"--lmdb": p.lmdb, "--out": p.model, "--work-dir": p.work_dir},
        "evaluate": {
            "--weights": p.model,
            "--lr": p.eval_lr(dataset, level),
            "--gt": p.eval_gt(dataset),
            "--out": p.results(dataset, level),
        },
        "report": {
            "--results": p.results_root,
            "--bitrates": p.lr_root,
            "--model": p.model,
            "--out": p.reports,
        },
    }
    not_paths = {"--crf", "--dataset", "--level"}
    for name, stage in stages.items():
        command = stage.get("do", stage)["cmd"]
        for variable, value in {
            "${profile}": "PROFILE",
            "${item.dataset}": dataset,
            "${item.level}": level,
            "${item}": crf,
        }.items():
            command = command.replace(variable, value)
        words = shlex.split(command)
        options = {
            word: Path(words[i + 1]) for i, word in enumerate(words) if word.startswith("--") and word not in not_paths
        }
        assert options == expected[name], name
    train_outs = [next(iter(o)) if isinstance(o, dict) else o for o in stages["train"]["outs"]]
    assert [Path(o.replace("${profile}", "PROFILE")) for o in train_outs] == [p.model]
    assert os.fspath(p.model) == "models/PROFILE/ftvsr.pth"


# ------------------------------------------------------------------ fetch for the paper profile


def _paper_params(tmp_path: Path, **train: object) -> Path:
    params = yaml.safe_load((ROOT / "profiles" / "paper.yaml").read_text())
    params["data"]["workers"] = 2
    params["train"].update(train)
    path = tmp_path / "paper.yaml"
    path.write_text(yaml.safe_dump(params, sort_keys=False))
    return path


def test_paper_fetch_downloads_and_arranges_reds4_vid4_and_spynet(tmp_path, monkeypatch):
    """The fetch stage of profile `paper` against a real HTTP server on 127.0.0.1 (a mirror)."""
    from test_download import FileServer, png, zip_bytes

    from ftvsr.data import sources
    from pipelines.fetch import fetch_flow

    server = FileServer()
    server.thread.start()
    try:
        train = {
            f"train/train_sharp/{clip}/{i:08d}.png": png(int(clip) + i)
            for clip in ("000", "001", "011", "015", "020")
            for i in range(2)
        }
        server.files["/REDS/train_sharp.zip"] = zip_bytes(train)
        server.files["/REDS/val_sharp.zip"] = zip_bytes({"val/val_sharp/000/00000000.png": png(7)})
        server.files["/REDS/train_sharp_bicubic.zip"] = zip_bytes(
            {name.replace("train_sharp/", "train_sharp_bicubic/X4/"): png(1, (2, 2)) for name in train}
        )
        server.files["/REDS/val_sharp_bicubic.zip"] = zip_bytes(
            {"val/val_sharp_bicubic/X4/000/00000000.png": png(7, (2, 2))}
        )
        server.files["/Vid4/Vid4.zip"] = zip_bytes(
            {f"Vid4/GT/{clip}/{i:08d}.png": png(i) for clip in ("calendar", "walk") for i in range(3)}
        )
        weights = b"pretrained spynet"
        server.files["/spynet/spynet_20210409-c6c1bd09.pth"] = weights
        spynet = sources.DatasetSource(
            "spynet",
            "",
            (
                sources.Part(
                    "weights",
                    sources.SPYNET.parts[0].url,
                    sources.SPYNET.parts[0].dest,
                    "file",
                    sha256=hashlib.sha256(weights).hexdigest(),
                ),
            ),
        )
        monkeypatch.setitem(sources.SOURCES, "spynet", spynet)  # the real digest cannot match test bytes
        monkeypatch.setenv(sources.MIRROR_ENV, server.base)
        hr, downloads = tmp_path / "hr", tmp_path / "downloads"
        spynet_path = tmp_path / "weights" / "spynet.pth"
        params_file = _paper_params(tmp_path, spynet_weights=str(spynet_path))

        dataset_lr = tmp_path / "dataset_lr"
        done = fetch_flow(hr, params_file, downloads=downloads, dataset_lr=dataset_lr)
        assert sorted(p.name for p in (hr / "train").iterdir()) == ["001", "240"]  # REDS4 held out
        assert sorted(p.name for p in (hr / "test" / "reds4").iterdir()) == ["000", "011", "015", "020"]
        assert sorted(p.name for p in (hr / "test" / "vid4").iterdir()) == ["calendar", "walk"]
        assert len(done) == 8 and done["test/vid4/walk"] == 3
        linked = hr / "test" / "reds4" / "011" / "00000001.png"
        assert linked.stat().st_ino == (downloads / "REDS/train/train_sharp/011/00000001.png").stat().st_ino
        assert spynet_path.read_bytes() == weights
        # REDS' own X4 frames, for the same clips, beside: the degrade stage takes them as raw LR
        assert sorted(p.name for p in (dataset_lr / "train").iterdir()) == ["001", "240"]
        assert sorted(p.name for p in (dataset_lr / "test" / "reds4").iterdir()) == ["000", "011", "015", "020"]
        assert not (dataset_lr / "test" / "vid4").exists()  # Vid4 comes without LR

        requests = len(server.requests)
        shutil.rmtree(hr / "train" / "001")
        fetch_flow(hr, params_file, downloads=downloads)  # run again: rebuilt from the verified downloads
        assert (hr / "train" / "001" / "00000001.png").is_file() and len(server.requests) == requests

        leaky = _paper_params(tmp_path, spynet_weights=str(spynet_path))
        leaky.write_text(leaky.read_text().replace("leak_reds4: false", "leak_reds4: true"))
        fetch_flow(hr, leaky, downloads=downloads)  # other settings: the HR layout is rebuilt
        assert sorted(p.name for p in (hr / "train").iterdir()) == ["000", "001", "011", "015", "020", "240"]

        del server.files["/Vid4/Vid4.zip"]
        shutil.rmtree(downloads / "Vid4")
        shutil.rmtree(downloads / "downloads" / "Vid4")  # the kept archive would rebuild it offline
        with pytest.raises(FTVSRError, match="404"):
            fetch_flow(tmp_path / "hr2", params_file, downloads=downloads)
        assert not (tmp_path / "hr2").exists()
    finally:
        server.httpd.shutdown()
        server.httpd.server_close()
