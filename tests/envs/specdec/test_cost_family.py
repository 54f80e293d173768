"""Cost-profile families: deterministic draws within their documented ranges; grids equal scalar calls."""

from __future__ import annotations

import numpy as np
import pytest

from envs.specdec import SpecGymError
from envs.specdec.cost import AnalyticCost, MeasuredCost, ProfiledCost
from envs.specdec.cost_family import (
    FAMILIES,
    GPU_RANGES,
    PERTURB_RANGES,
    GpuShapedCost,
    PerturbedCost,
    describe,
    make_cost_family,
    to_profile,
)

BASE = AnalyticCost()


def draws(name: str, seed: int, n: int = 50) -> list[dict]:
    family, rng = make_cost_family(name, BASE), np.random.default_rng(seed)
    return [describe(family.draw(rng)) for _ in range(n)]


@pytest.mark.parametrize("name", list(FAMILIES))
def test_draws_are_deterministic_under_a_seed(name):
    assert draws(name, 3) == draws(name, 3)
    if name != "calibrated":
        assert draws(name, 3) != draws(name, 4)


def within(params: dict, ranges: dict) -> bool:
    return all(low <= params[key] <= high for key, (low, high) in ranges.items())


@pytest.mark.parametrize("name", ["calibrated-perturbed", "gpu", "gpu-perturbed"])
def test_draws_lie_within_the_documented_ranges_and_vary(name):
    got = draws(name, 0, 200)
    ranges = {**(GPU_RANGES if name.startswith("gpu") else {}), **(PERTURB_RANGES if "perturbed" in name else {})}
    assert all(within(p, ranges) for p in got)
    for key in ranges:  # spread over the range, not stuck at one value
        values = [p[key] for p in got]
        low, high = ranges[key]
        assert min(values) < low + 0.25 * (high - low) and max(values) > high - 0.25 * (high - low)


def test_calibrated_is_the_base_and_mixed_draws_every_member():
    family = make_cost_family("calibrated", BASE)
    assert family.draw(np.random.default_rng(0)) is BASE
    kinds = {(d["kind"], d.get("base")) for d in draws("mixed", 0, 100)}
    assert kinds == {("analytic", None), ("perturbed", "analytic"), ("gpu", None), ("perturbed", "gpu")}


def test_gpu_shape_is_flat_to_the_knee_then_rises():
    cost = GpuShapedCost(draft_ratio=0.05, knee=16, rise=1.0, flat_slope=0.0, context_slope=0.0)
    step = cost.verify_time(1, 100)
    assert cost.verify_time(16, 100) == pytest.approx(step)
    assert cost.verify_time(32, 100) == pytest.approx(2 * step)  # rise 1: linear past the knee
    assert cost.draft_time(1, 100) == pytest.approx(0.05 * step)


def test_perturbation_scales_draft_and_the_extra_verification_cost():
    cost = PerturbedCost(BASE, draft_scale=2.0, verify_scale=0.5)
    assert cost.draft_time(3, 50) == pytest.approx(2 * BASE.draft_time(3, 50))
    assert cost.verify_time(1, 50) == pytest.approx(BASE.verify_time(1, 50))
    extra = BASE.verify_time(9, 50) - BASE.verify_time(1, 50)
    assert cost.verify_time(9, 50) - cost.verify_time(1, 50) == pytest.approx(0.5 * extra)


@pytest.mark.parametrize("name", list(FAMILIES))
def test_grid_equals_the_scalar_calls_bit_for_bit(name):
    family, rng = make_cost_family(name, BASE), np.random.default_rng(1)
    sizes, contexts = [1, 2, 3, 7, 33], [5, 40, 1000]
    for _ in range(5):
        cost = family.draw(rng)
        for kind, one in (("draft", cost.draft_time), ("verify", cost.verify_time)):
            scalar = np.array([[one(n, c) for c in contexts] for n in sizes])
            assert np.array_equal(cost.grid(kind, sizes, contexts), scalar)


def test_a_draw_saved_as_a_profile_gives_the_same_times(tmp_path):
    cost = make_cost_family("gpu-perturbed", BASE).draw(np.random.default_rng(2))
    profile = to_profile(cost, [10, 100, 500], [1, 2, 4], list(range(1, 34)), {"name": "test"})
    loaded = ProfiledCost.load(profile.save(tmp_path / "p.json"))
    for n in (1, 5, 33):
        assert loaded.verify_time(n, 100) == pytest.approx(cost.verify_time(n, 100))
    assert loaded.meta["source"]["kind"] == "perturbed"


def test_bad_names_and_parameters_are_refused():
    with pytest.raises(SpecGymError, match="unknown cost family 'tpu'; choose one of calibrated"):
        make_cost_family("tpu", BASE)
    with pytest.raises(SpecGymError, match="predictive cost models"):
        make_cost_family("gpu", MeasuredCost())
    with pytest.raises(SpecGymError, match="draft_ratio"):
        GpuShapedCost(draft_ratio=0.0)
    with pytest.raises(SpecGymError, match="verify_scale"):
        PerturbedCost(BASE, verify_scale=float("nan"))
