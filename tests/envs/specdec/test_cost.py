"""Cost models: calibration, save/load, interpolation and cycle predictions (no timing asserts)."""

from __future__ import annotations

import json

import pytest

from envs.specdec import SpecGymError, SpeculativeDecoder
from envs.specdec.cost import (
    REMEASURE_ROUNDS,
    AnalyticCost,
    MeasuredCost,
    ProfiledCost,
    ScaledDraftCost,
    calibrate,
    make_cost_model,
)


@pytest.fixture(scope="module")
def profile(text_pair):
    # deterministic cell times (FakeTimer, below): these tests read the tables' shape, interpolation
    # and round trip; tiny-random's real ~ms cells on a loaded machine break the monotonicity check,
    # which has its own tests below
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr("envs.specdec.cost.CellTimer", FakeTimer)
        FakeTimer.busy, FakeTimer.calls = {}, []
        return calibrate(
            text_pair, contexts=[16, 64], draft_sizes=(1, 3), verify_sizes=(1, 2, 5), repeats=1, progress=False
        )


@pytest.fixture(scope="module")
def records(text_pair):
    dec = SpeculativeDecoder(text_pair)
    return dec.generate(text_pair.encode("The cat sat on the mat."), 24, depth=3, width=2).records


def test_profile_shape_and_meta(profile):
    assert profile.contexts == [16, 64]
    assert len(profile.draft_table) == 2 and all(len(r) == 2 for r in profile.draft_table)
    assert len(profile.verify_table) == 3
    assert all(t > 0 for row in profile.draft_table + profile.verify_table for t in row)
    assert profile.meta["pair"] == "tiny-random" and profile.meta["device"].startswith("cpu")


def test_profile_round_trip(profile, tmp_path, records):
    path = profile.save(tmp_path / "p.json")
    loaded = make_cost_model(str(path))
    assert isinstance(loaded, ProfiledCost) and loaded == profile
    assert [loaded.cycle_time(r) for r in records] == [profile.cycle_time(r) for r in records]
    assert json.loads(path.read_text())["kind"] == "profiled"


def test_interpolation_hits_grid_points_and_is_monotone_in_between(profile):
    for s, n in enumerate(profile.verify_sizes):
        for c, ctx in enumerate(profile.contexts):
            assert profile.verify_time(n, ctx) == pytest.approx(profile.verify_table[s][c])
    lo, hi = sorted((profile.verify_time(2, 40), profile.verify_time(5, 40)))
    assert lo <= profile.verify_time(3, 40) <= hi
    # beyond the grid: extrapolated in size, clamped in context
    assert profile.verify_time(5, 10_000) == pytest.approx(profile.verify_time(5, 64))


def test_cycle_time_sums_draft_forwards_and_verification(records):
    cost = AnalyticCost()
    for r in records:
        expected = sum(cost.draft_time(n, r.context_len) for n in r.draft_tokens_fed) + cost.verify_time(
            r.verify_tokens_fed, r.context_len
        )
        assert cost.cycle_time(r) == pytest.approx(expected)
        assert r.verify_tokens_fed == len(r.verified) + 1  # the pending token + the verified nodes
    assert any(r.draft_tokens_fed[1:] == [2] * (len(r.draft_tokens_fed) - 1) for r in records)


def test_measured_reads_the_records(records):
    cost = MeasuredCost()
    assert [cost.cycle_time(r) for r in records] == [r.draft_time + r.verify_time for r in records]
    with pytest.raises(SpecGymError, match="use 'profiled' to predict"):
        cost.draft_time(1, 10)


def test_bad_cost_specs(tmp_path):
    with pytest.raises(SpecGymError, match="unknown cost model 'fast'"):
        make_cost_model("fast")
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(SpecGymError, match="recalibrate with python -m experiments.benchmark cost"):
        make_cost_model(str(bad))


# -- bad profiles -------------------------------------------------------------------------------------------


def _profile_data(**changes) -> dict:
    """A sound profile's JSON fields (two sizes of each, two contexts), with ``changes``."""
    data = {
        "kind": "profiled",
        "contexts": [32, 128],
        "draft_sizes": [1, 4],
        "draft_table": [[0.010, 0.011], [0.012, 0.013]],
        "verify_sizes": [1, 4],
        "verify_table": [[0.097, 0.100], [0.105, 0.110]],
        "meta": {"pair": "smollm2-135m"},
    }
    return {**data, **changes}


def _write(tmp_path, data, name="p.json"):
    path = tmp_path / name
    path.write_text(json.dumps(data))
    return path


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"verify_table": [[-0.097, 0.1], [0.105, 0.11]]}, r"verify_table\[0\]\[0\] is -0.097: times must be finite"),
        ({"draft_table": [[0.0, 0.0], [0.0, 0.0]]}, r"draft_table\[0\]\[0\] is 0.0: times must be finite numbers"),
        ({"draft_table": [[float("nan"), 0.01], [0.01, 0.01]]}, r"is nan: times must be finite"),
        ({"verify_table": []}, r"verify_table must have one row per verify size \(2\), got 0"),
        ({"verify_table": [[0.097, 0.1], [0.105]]}, r"verify_table\[1\] must have one entry per context \(2\), got 1"),
        ({"contexts": []}, "contexts must be a non-empty list"),
        ({"verify_sizes": [4, 1]}, "verify_sizes must be strictly increasing"),
        ({"draft_spread": [[0.1, 0.1]]}, r"draft_spread must have one row per draft size \(2\), got 1"),
        # the busy bfloat16 profile: verifying 4 tokens at context 32 in 69 ms, 1 token in 97 ms
        (
            {"verify_table": [[0.097, 0.100], [0.069, 0.110]]},
            r"verifying 4 tokens at context 32 takes 69 ms but 1 token 97 ms \(29% less, beyond the 10% noise "
            r"allowance\), so it was calibrated on a busy machine",
        ),
    ],
)
def test_bad_profiles_are_refused_on_load(tmp_path, changes, message):
    path = _write(tmp_path, _profile_data(**changes))
    with pytest.raises(SpecGymError, match=message) as err:
        ProfiledCost.load(path)
    text = str(err.value)
    assert "\n" not in text and text.startswith(f"cost profile {str(path)!r}")
    assert "recalibrate with python -m experiments.benchmark cost --pair smollm2-135m" in text


def test_dips_within_the_measured_spread_load(tmp_path):
    """A profile that records its spread is allowed dips within it (10% to 25%); one without gets 10%."""
    dip = {"verify_table": [[0.100, 0.100], [0.085, 0.110]]}  # 15% less time for 4 tokens than for 1
    with pytest.raises(SpecGymError, match="15% less, beyond the 10% noise allowance"):
        ProfiledCost.load(_write(tmp_path, _profile_data(**dip)))
    spread = {"verify_spread": [[0.2, 0.0], [0.0, 0.0]], "draft_spread": [[0.0, 0.0], [0.0, 0.0]]}
    loaded = ProfiledCost.load(_write(tmp_path, _profile_data(**dip, **spread), "noisy.json"))
    assert loaded.verify_spread == spread["verify_spread"]
    quiet = {**spread, "verify_spread": [[0.01, 0.0], [0.0, 0.0]]}
    with pytest.raises(SpecGymError, match="15% less, beyond the 10% noise allowance"):
        ProfiledCost.load(_write(tmp_path, _profile_data(**dip, **quiet), "quiet.json"))
    deep = {"verify_table": [[0.100, 0.100], [0.060, 0.110]]}
    very_noisy = {**spread, "verify_spread": [[0.9, 0.0], [0.0, 0.0]]}
    with pytest.raises(SpecGymError, match="40% less, beyond the 25% noise allowance"):
        ProfiledCost.load(_write(tmp_path, _profile_data(**deep, **very_noisy), "deep.json"))


def test_sub_millisecond_dips_are_jitter(tmp_path):
    """A toy model's cells take under a millisecond: a dip of a third of one (0.3 ms) is scheduler
    jitter, not a contradiction; the same share of real-model cells (30 ms of 90) is refused."""
    toy = {"verify_table": [[0.0009, 0.0009], [0.0006, 0.0011]], "draft_table": [[0.0004, 0.0004], [0.0005, 0.0005]]}
    assert ProfiledCost.load(_write(tmp_path, _profile_data(**toy), "toy.json")).verify_time(4, 32) == pytest.approx(
        0.0006
    )
    real = {"verify_table": [[0.090, 0.100], [0.060, 0.110]]}
    with pytest.raises(SpecGymError, match="33% less, beyond the 10% noise allowance"):
        ProfiledCost.load(_write(tmp_path, _profile_data(**real), "real.json"))


def test_old_profiles_without_spread_load(tmp_path, records):
    path = _write(tmp_path, _profile_data())
    loaded = ProfiledCost.load(path)
    assert loaded.draft_spread is None and loaded.verify_spread is None
    assert all(loaded.cycle_time(r) > 0 for r in records)
    assert loaded.verify_time(4, 32) == pytest.approx(0.105)


def test_truncated_profile_names_the_file_and_the_leftover(tmp_path):
    path = _write(tmp_path, _profile_data())
    path.write_text(path.read_text()[:40])
    with pytest.raises(SpecGymError, match=r"p.json' is truncated or corrupt \(not valid JSON\); recalibrate"):
        ProfiledCost.load(path)
    leftover = tmp_path / ".gone.json.x1y2.part"
    leftover.write_text("{")
    with pytest.raises(
        SpecGymError, match=r"gone.json' not found \(an interrupted save left .*x1y2.part'; delete it\)"
    ):
        ProfiledCost.load(tmp_path / "gone.json")


def test_profile_save_is_atomic(tmp_path, monkeypatch):
    """An interrupted save leaves the old profile whole and no temporary file behind."""
    profile = ProfiledCost.load(_write(tmp_path, _profile_data()))
    path = profile.save(tmp_path / "saved.json")
    before = path.read_text()
    monkeypatch.setattr("envs.specdec.files.os.replace", lambda *a: (_ for _ in ()).throw(KeyboardInterrupt))
    with pytest.raises(KeyboardInterrupt):
        profile.save(path)
    assert path.read_text() == before and sorted(p.name for p in tmp_path.iterdir()) == ["p.json", "saved.json"]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"verify_base": -1e-2}, r"AnalyticCost verify_base=-0.01: pass a finite number of seconds > 0"),
        ({"draft_base": 0.0}, r"draft_base=0.0: pass a finite number of seconds > 0"),
        ({"draft_per_token": float("nan")}, r"draft_per_token=nan: pass a finite number of seconds >= 0"),
        ({"verify_per_context": -1e-6}, r"verify_per_context=-1e-06: .* >= 0"),
    ],
)
def test_bad_analytic_coefficients(kwargs, message):
    with pytest.raises(SpecGymError, match=message):
        AnalyticCost(**kwargs)


@pytest.mark.parametrize("scale", [0.0, -2.0, float("inf")])
def test_bad_draft_scale(scale):
    with pytest.raises(SpecGymError, match="draft time scale .* must be a finite number > 0"):
        ScaledDraftCost(AnalyticCost(), scale)


# -- calibration on a busy machine (a fake clock: exact, not timing dependent) ---------------------------------


class FakeTimer:
    """Cell times ``base + n * 1 ms``; ``busy`` maps a cell (kind, n, context index) to the times its
    successive measurements return instead (the last one repeats)."""

    busy: dict = {}
    calls: list = []

    def __init__(self, pair, contexts, seed=0):
        self.contexts = contexts

    def sample(self, kind, n, c, repeats):
        FakeTimer.calls.append((kind, n, c))
        queue = FakeTimer.busy.get((kind, n, c))
        if queue:
            times = queue.pop(0) if len(queue) > 1 else queue[0]
            return list(times)
        base = 0.050 if kind == "verify" else 0.010
        return [base + n * 1e-3 * (1 + 0.01 * i) for i in range(repeats)]


@pytest.fixture
def fake_timer(monkeypatch):
    monkeypatch.setattr("envs.specdec.cost.CellTimer", FakeTimer)
    FakeTimer.busy, FakeTimer.calls = {}, []
    return FakeTimer


def _calibrate(pair):
    return calibrate(pair, contexts=[32, 128], draft_sizes=(1, 2), verify_sizes=(1, 4), repeats=3, progress=False)


def test_calibration_stores_the_spread_between_repeats(text_pair, fake_timer, tmp_path):
    profile = _calibrate(text_pair)
    assert profile.verify_table[1][0] == pytest.approx(0.054 * 1 + 0.004 * 0.01)  # the median repeat
    assert profile.verify_spread[1][0] == pytest.approx(0.004 * 0.02 / profile.verify_table[1][0])
    assert profile.meta["remeasured_cells"] == 0 and len(fake_timer.calls) == 2 * 4
    saved = json.loads(profile.save(tmp_path / "p.json").read_text())
    assert saved["verify_spread"] == profile.verify_spread and ProfiledCost.load(tmp_path / "p.json") == profile


def test_calibration_remeasures_cells_a_busy_moment_spoiled(text_pair, fake_timer):
    """The issue's profile: 1 token at context 32 measured at 97 ms (busy), 4 tokens at 54 ms; the two
    cells are measured again, the second time the machine is quiet."""
    fake_timer.busy[("verify", 1, 0)] = [[0.097, 0.097, 0.098], [0.051, 0.051, 0.051]]
    profile = _calibrate(text_pair)
    assert profile.verify_table[0][0] == 0.051 and profile.meta["remeasured_cells"] == 2
    assert fake_timer.calls[8:] == [("verify", 1, 0), ("verify", 4, 0)]


def test_calibration_refuses_when_the_machine_stays_busy(text_pair, fake_timer):
    fake_timer.busy[("verify", 1, 0)] = [[0.097, 0.097, 0.097]]
    fake_timer.busy[("verify", 4, 0)] = [[0.069, 0.069, 0.069]]
    with pytest.raises(SpecGymError) as err:
        _calibrate(text_pair)
    text = str(err.value)
    assert text.startswith(
        "the machine is busy: verifying 4 tokens at context 32 takes 69 ms but 1 token 97 ms (29% less, "
        f"beyond the 10% noise allowance) after {REMEASURE_ROUNDS} re-measurements"
    )
    assert "quiet machine or with fewer threads" in text and "\n" not in text
    assert len(fake_timer.calls) == 8 + REMEASURE_ROUNDS * 2  # bounded: two cells, so many rounds


def test_bad_calibration_settings(text_pair, fake_timer):
    with pytest.raises(SpecGymError, match="repeats must be an integer >= 1"):
        calibrate(text_pair, repeats=0, progress=False)
    with pytest.raises(SpecGymError, match=r"verify sizes must be increasing integers >= 1, got \[0, 2\]"):
        calibrate(text_pair, verify_sizes=(0, 2), progress=False)
