"""Recurrent (GRU) students: numpy acts as torch does over whole episodes, states start at zero each episode and
move only for agents that act, and fitting on chunks with burn-in sees the states a whole episode would."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from marl_distill.distillation.collect import Buffer, collect
from marl_distill.distillation.sequences import Sequences, whole_episodes
from marl_distill.env.joint_vec_env import JointVecEnv
from marl_distill.env.registry import resolve
from marl_distill.policy.joint import RandomPolicy
from marl_distill.policy.memory import Carried
from marl_distill.policy.spec import EnvSpec
from marl_distill.students import StudentMeta, StudentNet, StudentTeam

NAV = resolve("navigation", {"N": 3, "max_cycles": 12, "sight": 0.6})
RECALL = resolve("recall", {"N": 2, "symbols": 3, "cue_steps": 2, "max_cycles": 7})


def gru_team(factory, kind: str, hidden: list[int], seed: int = 0) -> StudentTeam:
    spec = EnvSpec.of(factory())
    torch.manual_seed(seed)
    return StudentTeam(spec, StudentNet(StudentMeta.for_spec(spec, kind, hidden, arch="gru")))


@pytest.mark.parametrize(("kind", "hidden"), [("shared", [16]), ("per-agent", [24, 16])])
def test_numpy_gru_acts_as_torch_over_whole_episodes(kind, hidden):
    team = gru_team(NAV, kind, hidden)
    venv = JointVecEnv(NAV, 4, autoreset=True)
    obs = venv.reset([10, 11, 12, 13])
    torch_state, numpy_state = team.initial_state(4), team.initial_state(4)
    worst, moved = 0.0, 0.0
    for _ in range(30):  # 2.5 episodes per copy: states are reset at each copy's episode end
        torch_logits, torch_state = team.step(obs, torch_state)
        numpy_logits, numpy_state = team.numpy_step(obs, numpy_state)
        worst = max(worst, *(float(np.abs(torch_logits[a].numpy() - numpy_logits[a]).max()) for a in obs))
        moved = max(moved, *(float(np.abs(h).max()) for h in torch_state.values()))
        actions = {a: lg.argmax(dim=1).numpy() for a, lg in torch_logits.items()}
        step = venv.step(actions)
        for state in (torch_state, numpy_state):
            for h in state.values():
                h[step.done] = 0
        obs = step.obs
    assert worst <= 1e-5
    assert moved > 0.05  # the states carried something: the comparison covered recurrence, not only the head


def test_carried_state_starts_at_zero_and_moves_only_for_agents_that_act():
    team = gru_team(RECALL, "shared", [8])
    carried = Carried(team, 3)
    obs = {a: np.ones((3, 5), np.float32) for a in team.spec.agents}
    first = carried.logits(obs)
    carried.advance({"agent_0": np.array([True, True, True]), "agent_1": np.array([True, False, True])})
    assert np.all(carried.state["agent_0"] != 0)
    assert np.all(carried.state["agent_1"][1] == 0) and np.all(carried.state["agent_1"][[0, 2]] != 0)
    second = carried.logits(obs)  # same observations, another state: other logits
    assert not torch.allclose(first["agent_0"], second["agent_0"])
    carried.advance({})
    carried.reset(np.array([True, False, False]))  # copy 0 starts an episode
    assert np.all(carried.state["agent_0"][0] == 0) and np.all(carried.state["agent_0"][1:] != 0)
    carried.rows = np.array([0])
    assert torch.allclose(carried.logits({a: o[:1] for a, o in obs.items()})["agent_0"], first["agent_0"][:1])


@pytest.fixture(scope="module")
def ridden():
    """Recall states visited by random teachers, with a GRU student stepping its state alongside."""
    team = gru_team(RECALL, "per-agent", [12], seed=3)
    spec = team.spec
    got = collect(RECALL, RandomPolicy(spec), student=team, beta=1.0, samples=300, n_envs=4, seed=0,
                  rng=np.random.default_rng(0))  # fmt: skip
    return team, got.data


def test_collection_stores_the_students_state_zero_at_each_episode_start(ridden):
    team, data = ridden
    assert set(data.state) == set(team.spec.agents)
    order = np.argsort(data.episode, kind="stable")
    starts = order[np.r_[True, data.episode[order][1:] != data.episode[order][:-1]]]
    for h in data.state.values():
        assert np.all(h[starts] == 0)
        assert np.abs(h).sum() > 0


@pytest.mark.parametrize(("seq_len", "burn_in"), [(3, 2), (2, 0), (4, 7)])
def test_chunks_with_burn_in_from_stored_states_match_whole_episodes(ridden, seq_len, burn_in):
    team, data = ridden
    net = team.net
    whole = whole_episodes(data)
    chunks = Sequences(data, seq_len, burn_in)
    assert len(chunks) > len(whole)
    with torch.no_grad():
        for agent in team.spec.agents:
            x = net.encode(agent, data.obs[agent])
            ref, ref_rows = whole.unroll(net, agent, x, np.arange(len(whole)))
            got, rows = chunks.unroll(net, agent, x, np.arange(len(chunks)))
            assert sorted(rows.tolist()) == sorted(ref_rows.tolist()) == list(range(len(data)))
            by_row = dict(zip(ref_rows.tolist(), ref))
            assert max(float((got[i] - by_row[r]).abs().max()) for i, r in enumerate(rows.tolist())) <= 1e-5


def _worst_gap(net, data, chunks, whole, inputs) -> float:
    """Largest |chunked - whole-episode| logit over every row and agent."""
    worst = 0.0
    with torch.no_grad():
        for agent, x in inputs.items():
            ref, ref_rows = whole.unroll(net, agent, x, np.arange(len(whole)))
            got, rows = chunks.unroll(net, agent, x, np.arange(len(chunks)))
            by_row = dict(zip(ref_rows.tolist(), ref))
            worst = max(worst, max(float((got[i] - by_row[r]).abs().max()) for i, r in enumerate(rows.tolist())))
    return worst


def test_refreshed_states_are_the_current_weights_own_whatever_collected_them(ridden):
    team, collected = ridden
    data = collected.take(np.arange(len(collected)))  # a copy: the fixture's stored states stay as collected
    other = gru_team(RECALL, "per-agent", [12], seed=9).net  # not the weights that stored the states
    with torch.no_grad():
        for p in other.parameters():
            p.mul_(2.0)  # a network that remembers longer than a random one
    inputs = {a: other.encode(a, data.obs[a]) for a in team.spec.agents}
    chunks, whole = Sequences(data, 2, 1), whole_episodes(data)
    assert _worst_gap(other, data, chunks, whole, inputs) > 1e-3  # stale stored states: a short burn-in is not enough
    chunks.refresh(other, inputs)
    assert _worst_gap(other, data, chunks, whole, inputs) <= 1e-5


def test_whole_episode_buffer_keeps_episodes_whole_and_in_order(ridden):
    _, data = ridden
    buffer = Buffer(120, np.random.default_rng(1), whole_episodes=True)
    for k in range(3):  # as rounds arrive, each with its own episodes
        buffer.add(data.take(np.flatnonzero(data.episode % 3 == k)))
    kept = buffer.data
    assert kept is not None and 0 < len(kept) <= 120
    for episode in np.unique(kept.episode):
        mine = np.flatnonzero(data.episode == episode)
        rows = kept.obs["agent_0"][kept.episode == episode]
        assert np.array_equal(rows, data.obs["agent_0"][mine])  # all its steps, in time order
