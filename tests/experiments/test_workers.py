"""--workers: recording over Ray actors gives the serial trace, a killed worker loses nothing, and
without --workers nothing imports Ray. The Ray tests run on a local Ray with 2 workers."""

from __future__ import annotations

import functools
import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from envs.specdec.errors import SpecGymError
from envs.specdec.trace import ARRAYS
from experiments import record_traces
from experiments.cli import PairArgs, pair_from_args
from experiments.workers import check_workers

# local Ray clusters: once per CI run (.ci/run), on the newest transformers, and alone (serial):
# their actors time calibrations and fill both cores
pytestmark = [pytest.mark.once, pytest.mark.serial]

ROOT = Path(__file__).resolve().parents[2]
GSM = ["--pair", "gsm", "--prompts", "task:chain_sum", "--max-new-tokens", "32", "--threads", "1"]


def same_trace(a: Path, b: Path) -> None:
    """The two saved traces hold the same arrays byte for byte, and the same meta but the date."""
    with np.load(a) as x, np.load(b) as y:
        for name in ARRAYS:
            assert x[name].dtype == y[name].dtype and x[name].shape == y[name].shape, name
            assert x[name].tobytes() == y[name].tobytes(), name
        meta_x, meta_y = json.loads(str(x["meta"])), json.loads(str(y["meta"]))
    meta_x.pop("date"), meta_y.pop("date")
    assert meta_x == meta_y


def test_without_workers_nothing_imports_ray(tmp_path):
    code = (
        "import sys\n"
        "from experiments import record_traces, evaluate, benchmark, train\n"
        f"record_traces.main(['--pair', 'tiny-random', '--n-prompts', '2', '--max-new-tokens', '4', "
        f"'--out', {str(tmp_path / 't.npz')!r}])\n"
        "assert 'ray' not in sys.modules, 'ray was imported'\n"
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT), "TQDM_DISABLE": "1", "SPECGYM_DATA": str(tmp_path / "data")}
    proc = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert (tmp_path / "t.npz").is_file()


def test_workers_refused_without_ray_naming_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)  # importlib's own "not importable" marker
    with pytest.raises(
        SpecGymError, match=r"needs Ray, which is not installed; install it with pip install -e \.\[ray\]"
    ):
        check_workers(2)
    with pytest.raises(SpecGymError, match="--workers must be an integer >= 1"):
        check_workers(0)
    with pytest.raises(SpecGymError, match="--ray-address needs --workers"):
        check_workers(None, "127.0.0.1:6379")


def test_an_unreachable_ray_address_is_refused_before_ray_starts(monkeypatch):
    pytest.importorskip("ray", reason="the Ray tests need the ray extra: pip install -e .[ray]")
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    with pytest.raises(SpecGymError, match="cannot reach a Ray cluster at 127.0.0.1:1 .*ray start --head"):
        check_workers(2, "127.0.0.1:1")
    with pytest.raises(SpecGymError, match="is not HOST:PORT"):
        check_workers(2, "nowhere")
    monkeypatch.setenv("RAY_ADDRESS", "127.0.0.1:1")  # the variable is read when --ray-address is not given
    with pytest.raises(SpecGymError, match="cannot reach a Ray cluster at 127.0.0.1:1"):
        check_workers(2)


@pytest.fixture(scope="module")
def ray_module():
    return pytest.importorskip("ray", reason="the Ray tests need the ray extra: pip install -e .[ray]")


def test_two_workers_record_the_serial_trace(ray_module, tmp_path):
    """48 gsm prompts: the merged trace equals the serial recording byte for byte."""
    serial, merged = tmp_path / "serial.npz", tmp_path / "merged.npz"
    record_traces.main([*GSM, "--n-prompts", "48", "--out", str(serial)])
    record_traces.main([*GSM, "--n-prompts", "48", "--out", str(merged), "--workers", "2"])
    same_trace(serial, merged)


def test_a_worker_killed_mid_recording_changes_nothing(ray_module):
    from envs.specdec.trace import record_trace
    from envs.tasks.prompts import load_prompts
    from experiments.workers import open_pool

    texts = load_prompts("task:chain_sum", 24, 9000)
    setup = functools.partial(pair_from_args, PairArgs(pair="gsm", threads=1))
    shape = {"max_new_tokens": 32, "width": 2, "max_depth": 4}
    with open_pool(setup, workers=2) as pool:
        killed = []

        def kill_one() -> None:
            while pool.done < 2:  # two prompts recorded, the rest to come
                time.sleep(0.01)
            killed.append(pool.done)
            ray_module.kill(pool.actors[0])

        killer = threading.Thread(target=kill_one, daemon=True)
        killer.start()
        merged = record_traces.record_texts(pool, texts, chunk=64, meta={}, **shape)
        killer.join()
        assert pool.failures == 1 and len(pool.actors) == 1
    assert killed[0] < len(texts)  # it died mid-recording
    pair = setup()
    serial = record_trace(pair, [pair.encode(t) for t in texts], progress=False, **shape)
    for name in ARRAYS:
        assert getattr(merged, name).tobytes() == getattr(serial, name).tobytes(), name


def test_a_workers_bad_input_comes_back_as_one_line(ray_module):
    from experiments.workers import open_pool

    setup = functools.partial(pair_from_args, PairArgs(pair="nosuch"))
    with pytest.raises(SpecGymError, match="unknown pair 'nosuch'") as info, open_pool(setup, workers=1):
        pass
    assert "\n" not in str(info.value)


TINY = ["--pair", "tiny-random", "--threads", "1", "--n-prompts", "4", "--max-new-tokens", "12"]


def test_pair_benchmark_over_workers_decodes_what_serial_does(ray_module, tmp_path):
    """Acceptance by k and the outputs do not depend on where prompts ran (only the clock does)."""
    from experiments import benchmark

    args = ["pair", *TINY, "--ks", "1", "3", "--repeats", "2"]
    benchmark.main([*args, "--out", str(tmp_path / "serial.json")])
    benchmark.main([*args, "--workers", "2", "--out", str(tmp_path / "workers.json")])
    serial, workers = (json.loads((tmp_path / f"{n}.json").read_text()) for n in ("serial", "workers"))
    for key in ("generated_tokens", "identical_outputs", "n_prompts", "divergences", "float32_top2_gap"):
        assert serial[key] == workers[key], key
    for k in ("1", "3"):
        for key in ("mean_accepted_length", "acceptance_rate"):
            assert serial["by_k"][k][key] == workers["by_k"][k][key], (k, key)
        assert len(workers["by_k"][k]["tokens_per_s"]) == 4 and workers["by_k"][k]["tokens_per_s"]["min"] > 0


def test_calibration_over_workers_makes_one_profile_per_kind_of_device(ray_module, tmp_path, monkeypatch):
    """Two workers of one kind (this machine's CPU): one profile, in this machine's data directory."""
    from envs.specdec.cost import ProfiledCost
    from experiments import benchmark

    monkeypatch.setenv("SPECGYM_DATA", str(tmp_path / "data"))
    args = ["cost", *TINY, "--ks", "2", "--calibration-repeats", "1", "--workers", "2"]
    benchmark.main([*args, "--out", str(tmp_path / "cost.json")])
    result = json.loads((tmp_path / "cost.json").read_text())
    (profile,) = (tmp_path / "data" / "profiles").iterdir()
    assert result["profile"] == str(profile) and profile.name == "tiny-random__cpu__float32.json"
    assert ProfiledCost.load(profile).meta["threads"] == 1  # calibrated in a worker, one thread
    assert result["n_cycles"] > 0 and result["device"].startswith("cpu")


ARB = ["--env", "arbitration", "--pair", "gsm", "--split", "validation", "--n-items", "24", "--threads", "1"]


def same_branches(a: Path, b: Path) -> None:
    """Two branch records hold the same arrays byte for byte, but the recorded seconds of each leaf."""
    from envs.specdec.branches import BranchTree

    x, y = BranchTree.load(a), BranchTree.load(b)
    for name, value in x.arrays.items():
        if name != "leaf_time":  # measured wall clock
            assert value.dtype == y.arrays[name].dtype and value.tobytes() == y.arrays[name].tobytes(), name
    for meta in (x.meta, y.meta):
        meta.pop("record_seconds"), meta.pop("recorded")
    assert x.meta == y.meta


def test_two_workers_record_the_serial_branch_record(ray_module, tmp_path):
    """Arbitration decision trees of 24 gsm items: the merged record equals the serial one."""
    serial, merged = tmp_path / "serial.npz", tmp_path / "merged.npz"
    record_traces.main([*ARB, "--out", str(serial)])
    record_traces.main([*ARB, "--out", str(merged), "--workers", "2", "--chunk", "6"])
    same_branches(serial, merged)


def test_a_worker_killed_mid_branch_recording_changes_nothing(ray_module, tmp_path):
    from envs.arbitration import ArbitrationEnv
    from envs.arbitration.record import branch_meta, record_branches, record_env, record_indices
    from experiments.workers import open_pool

    kwargs = {"pair": "gsm", "split": "validation", "n_items": 16}
    serial = tmp_path / "serial.npz"
    record_env(ArbitrationEnv(**kwargs), serial, progress=False)
    limits = {"max_nodes": 4096, "max_drafts": None}
    with open_pool(functools.partial(ArbitrationEnv, **kwargs), workers=2) as pool:
        killed = []

        def kill_one() -> None:
            while pool.done < 2:  # two items recorded, the rest to come
                time.sleep(0.01)
            killed.append(pool.done)
            ray_module.kill(pool.actors[0])

        killer = threading.Thread(target=kill_one, daemon=True)
        killer.start()
        work = functools.partial(record_indices, **limits)
        record_branches(
            pool.call(functools.partial(branch_meta, **limits)),
            16,
            tmp_path / "merged.npz",
            record_items=lambda ix: pool.map(work, list(ix), "recording branches"),
            device=serial.name,
            chunk=16,
            progress=False,
        )
        killer.join()
        assert pool.failures == 1
    assert killed[0] < 16
    from envs.specdec.branches import BranchTree

    merged = BranchTree.load(tmp_path / "merged.npz")
    expected = BranchTree.load(serial)
    for name, value in expected.arrays.items():
        if name != "leaf_time":
            assert value.tobytes() == merged.arrays[name].tobytes(), name


def test_evaluation_records_its_items_over_workers(ray_module, tmp_path, monkeypatch):
    """evaluate --env arbitration --workers 2 records the items it replays on the actors: the record
    in the data directory equals a serial one."""
    from experiments.evaluate_arbitration import replay_env
    from experiments.workers import WorkerArgs

    monkeypatch.setenv("SPECGYM_DATA", str(tmp_path / "data"))
    env = replay_env("gsm", "chain_sum", "validation", 12, 4, 64, "auto", workers=WorkerArgs(workers=2))
    serial = tmp_path / "serial.npz"
    record_traces.main([*ARB[:-4], "--n-items", "12", "--threads", "1", "--out", str(serial)])
    same_branches(Path(env._kwargs["traces"]), serial)
