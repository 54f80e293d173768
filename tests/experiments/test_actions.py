"""Action histograms and departures from a rule (experiments.actions) on a tiny-random replay trace."""

from __future__ import annotations

import pytest

from envs.partners import make_policy
from envs.specdec.cost import make_cost_model
from envs.specdec.replay import TraceReplay
from envs.specdec.schedules import rollout
from experiments.actions import Watched

RULES = ("confidence", "specdec+++expected", "heuristic")


@pytest.fixture
def source(traces):
    return TraceReplay(str(traces / "heldout.npz"), cost=make_cost_model("analytic"), width=4, max_depth=8)


def play(watched: Watched, source: TraceReplay) -> list:
    return [rollout(watched, source, i) for i in range(source.n_prompts)]


@pytest.mark.parametrize("rule", RULES)
def test_a_policy_never_departs_from_itself_and_counts_every_cycle(source, rule):
    watched = Watched(make_policy(rule), {rule: make_policy(rule)})
    episodes = play(watched, source)
    cycles = sum(e.cycles for e in episodes)
    hist = watched.histograms()
    assert set(hist) == {"depth", "verify_size"}
    assert sum(hist["depth"].values()) == sum(hist["verify_size"].values()) == cycles
    assert sum(int(d) * c for d, c in hist["depth"].items()) == sum(e.drafted for e in episodes)
    assert all(1 <= int(d) <= 8 for d in hist["depth"]) and all(0 <= int(n) <= 32 for n in hist["verify_size"])
    share = watched.departure(rule)
    assert share["draft"] == share["verify"] == share["all"] == 0.0 and share["decisions"] > 0
    # watching changes nothing: the same decisions as the bare rule
    assert [e.tokens_per_s for e in episodes] == [rollout(make_policy(rule), source, i).tokens_per_s for i in range(4)]


def test_departure_is_a_share_of_the_decisions(source):
    """static-1 stops at once: every depth decision it is asked departs from a rule that always
    drafts deeper (static-8), none from static-1's own rule."""
    shadows = {name: make_policy(name) for name in ("static-8", "static-1", *RULES)}
    watched = Watched(make_policy("static-1"), shadows)
    play(watched, source)
    assert watched.histograms()["depth"] == {"1": sum(watched.counts["depth"].values())}  # collapsed: one bar
    assert watched.departure("static-8")["draft"] == 1.0 and watched.departure("static-1")["draft"] == 0.0
    for name in shadows:
        share = watched.departure(name)
        assert all(0.0 <= share[k] <= 1.0 for k in ("draft", "verify", "all"))
