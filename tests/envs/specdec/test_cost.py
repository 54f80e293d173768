"""Cost models: calibration, save/load, interpolation and cycle predictions (no timing asserts)."""

from __future__ import annotations

import json

import pytest

from envs.specdec import SpecGymError, SpeculativeDecoder
from envs.specdec.cost import AnalyticCost, MeasuredCost, ProfiledCost, calibrate, make_cost_model


@pytest.fixture(scope="module")
def profile(text_pair):
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
