"""The batched replicas of mpe2's tasks step as mpe2 steps: each batch of episodes starts from mpe2's own world state
copied into the replica, then both take the same random actions and must agree on observations, rewards,
terminations, truncations and ``state()`` to 1e-5 at every step. A difference is a bug in the replica, not a
tolerance to widen. A second test checks that a reset with seed s puts everything where mpe2's reset(seed=s) does."""

from __future__ import annotations

import numpy as np
import pytest
from marl_distill_envs import fast_mpe
from mpe2 import simple_reference_v3, simple_speaker_listener_v4, simple_spread_v3
from pettingzoo.utils.env_logger import EnvLogger

from marl_distill.cli import cli

TOL = 1e-5
COPIES, BATCHES = 8, 25  # 200 episodes per case
CASES = [
    ("spread", simple_spread_v3, fast_mpe.simple_spread, {"N": 3}),
    (
        "spread nearest 1 and 2",
        simple_spread_v3,
        fast_mpe.simple_spread,
        {"N": 3, "local_ratio": 0.2, "num_agent_neighbors": 1, "num_landmark_neighbors": 2},
    ),
    (
        "spread alone, success ends",
        simple_spread_v3,
        fast_mpe.simple_spread,
        {"N": 1, "num_agent_neighbors": 2, "num_landmark_neighbors": 2, "terminate_on_success": True},
    ),
    ("speaker_listener", simple_speaker_listener_v4, fast_mpe.simple_speaker_listener, {}),
    ("reference", simple_reference_v3, fast_mpe.simple_reference, {"local_ratio": 0.3}),
]


def copy_world(raw, batch: fast_mpe.MPEBatch, i: int) -> None:
    """mpe2's world state (positions, velocities, utterances, goals) into copy ``i`` of the replica."""
    world = raw.world
    for k, agent in enumerate(world.agents):
        batch.pos[i, k], batch.vel[i, k] = agent.state.p_pos, agent.state.p_vel
        batch.comm[i, k] = agent.state.c
    for k, landmark in enumerate(world.landmarks):
        batch.landmarks[i, k] = landmark.state.p_pos
    if isinstance(batch, fast_mpe.SpeakerListenerBatch):
        batch.goal[i] = world.landmarks.index(world.agents[0].goal_b)
    if isinstance(batch, fast_mpe.ReferenceBatch):
        batch.goal[i] = [world.landmarks.index(agent.goal_b) for agent in world.agents]
    batch.t[i] = raw.steps


def random_actions(env, rng: np.random.Generator, n: int) -> dict[str, np.ndarray]:
    """``n`` random actions per agent: ints, or float32 vectors mostly in the Box, now and then on its corners or
    beyond them (both sides clip those)."""
    out = {}
    for agent in env.possible_agents:
        space = env.action_space(agent)
        if hasattr(space, "n"):
            out[agent] = rng.integers(space.n, size=n)
        else:
            a = rng.uniform(0, 1, (n, *space.shape))
            a = np.where(rng.random(a.shape) < 0.05, np.round(a), a)
            out[agent] = np.where(rng.random(a.shape) < 0.03, a * 3 - 1, a).astype(np.float32)
    return out


@pytest.mark.parametrize("continuous", [False, True], ids=["discrete", "continuous"])
@pytest.mark.parametrize("name, mpe, replica, kwargs", CASES, ids=[c[0] for c in CASES])
def test_replica_steps_as_mpe2_steps(name, mpe, replica, kwargs, continuous):
    kwargs = {**kwargs, "max_cycles": 25, "continuous_actions": continuous}
    EnvLogger.suppress_output()  # mpe2 warns of every clipped action
    envs = [mpe.parallel_env(**kwargs) for _ in range(COPIES)]
    batch = replica(**kwargs).batched(COPIES)
    rng = np.random.default_rng(7)
    steps = ended = successes = 0
    for episode in range(BATCHES):
        for i, env in enumerate(envs):
            env.reset(seed=1000 * episode + i)
            copy_world(env.unwrapped, batch, i)
        live = np.ones(COPIES, dtype=bool)
        obs = batch.observe()
        for t in range(25):
            expected_state = np.stack([env.state() for env in envs])[live]
            assert np.allclose(batch.state()[live], expected_state, atol=TOL, rtol=0), f"{name}: state at step {t}"
            actions = random_actions(envs[0], rng, COPIES)
            obs, rewards, terminated, truncated = batch.step(actions)
            for i, env in enumerate(envs):
                if not live[i]:
                    continue
                o, r, term, trunc, _ = env.step({a: actions[a][i] for a in env.agents})
                for a in env.possible_agents:
                    assert np.allclose(obs[a][i], o[a], atol=TOL, rtol=0), f"{name}: {a}'s observation, step {t}"
                    assert abs(rewards[a][i] - r[a]) <= TOL, f"{name}: {a}'s reward at step {t}"
                    assert (terminated[i], truncated[i]) == (term[a], trunc[a]), f"{name}: {a}'s end at step {t}"
                live[i] = bool(env.agents)
                successes += bool(terminated[i])
                ended += not live[i]
                steps += 1
            if not live.any():
                break
    assert ended == COPIES * BATCHES, "every episode ended in both"
    assert steps >= COPIES * BATCHES * 5
    assert successes > 0 if kwargs.get("terminate_on_success") else successes == 0


@pytest.mark.parametrize("name, mpe, replica, kwargs", CASES, ids=[c[0] for c in CASES])
def test_a_seeded_reset_starts_where_mpe2_starts(name, mpe, replica, kwargs):
    seeds = [0, 1, 17, 2**31 - 1, 123456789]
    batch = replica(**kwargs).batched(len(seeds))
    obs = batch.reset(seeds)
    for i, seed in enumerate(seeds):
        env = mpe.parallel_env(**kwargs)
        expected, _ = env.reset(seed=seed)
        for a in env.possible_agents:
            assert np.array_equal(obs[a][i], expected[a]), f"{name}: {a} after reset(seed={seed})"
        # the streams go on alike: the next unseeded reset matches too
        again, _ = env.reset()
        after = batch.reset([None], copies=[i])
        for a in env.possible_agents:
            assert np.array_equal(after[a][i], again[a]), f"{name}: {a} after an unseeded reset"


@pytest.mark.parametrize("env_id", ["simple_spread_fast", "simple_speaker_listener_fast", "simple_reference_fast"])
def test_replicas_pass_check_env(env_id):
    assert cli(["check-env", env_id, "--env-kwargs", '{"continuous_actions": true}']) == 0


def test_mpe2_options_the_replica_lacks_are_refused():
    with pytest.raises(ValueError, match="curriculum"):
        fast_mpe.simple_spread(curriculum=True)
    with pytest.raises(ValueError, match="render"):
        fast_mpe.simple_reference(render_mode="human")


@pytest.mark.parametrize(
    "kwargs, needle",
    [
        ({"n": 3}, "takes no 'n'; its arguments: N, local_ratio"),
        ({"N": "3"}, "N must be an integer, got '3'"),
        ({"local_ratio": "a"}, "local_ratio must be a number"),
        ({"continuous_actions": "yes"}, "continuous_actions must be true or false"),
        ({"num_agent_neighbors": 1.5}, "num_agent_neighbors must be an integer or None"),
        ({"max_cycles": 0}, "max_cycles must be >= 1"),
        ({"local_ratio": 2}, r"local_ratio is a proportion in \[0, 1\]"),
    ],
)
def test_bad_kwargs_are_named_in_the_tasks_own_words(kwargs, needle):
    with pytest.raises((TypeError, ValueError), match=needle):
        fast_mpe.simple_spread(**kwargs)


def test_what_mpe2_accepts_the_replica_accepts_as_the_same_task():
    """A whole float for max_cycles and 0/1 for a flag pass mpe2's own constructor, so they pass the replica's
    (a float N does not pass mpe2's, nor the replica's)."""
    simple_spread_v3.parallel_env(N=2, max_cycles=5.0, continuous_actions=0).reset(seed=0)
    with pytest.raises(TypeError):
        simple_spread_v3.parallel_env(N=2.0)
    with pytest.raises(TypeError, match="N must be an integer"):
        fast_mpe.simple_spread(N=2.0)
    loose = fast_mpe.simple_spread(N=2, max_cycles=5.0, continuous_actions=0).batched(3)
    strict = fast_mpe.simple_spread(N=2, max_cycles=5, continuous_actions=False).batched(3)
    assert loose.action_space("agent_0") == strict.action_space("agent_0")
    a, b = loose.reset([0, 1, 2]), strict.reset([0, 1, 2])
    assert all(np.array_equal(a[k], b[k]) for k in b)
    for _ in range(5):
        step = {k: np.ones(3, dtype=int) for k in b}
        x, y = loose.step(step), strict.step(step)
    assert all(np.array_equal(u[k], v[k]) for u, v in zip(x[:2], y[:2]) for k in v)  # observations, rewards
    assert np.array_equal(x[2], y[2]) and x[3].all() and y[3].all()  # both truncated at max_cycles


def test_the_vector_face_names_a_missing_agent_or_a_wrong_action_shape():
    world = fast_mpe.simple_spread(N=2).batched(4)
    with pytest.raises(ValueError, match=r"no actions for \['agent_1'\]"):
        world.step({"agent_0": np.zeros(4, dtype=int)})
    with pytest.raises(ValueError, match=r"agent_0's actions must have shape \(4,\)"):
        world.step({"agent_0": np.zeros(3, dtype=int), "agent_1": np.zeros(4, dtype=int)})


@pytest.mark.parametrize("autoreset", [True, False], ids=["autoreset", "no autoreset"])
@pytest.mark.parametrize(
    "replica, mpe, kwargs",
    [
        ("simple_spread_fast", "simple_spread", {"N": 3}),
        ("simple_spread_fast", "simple_spread", {"N": 1, "terminate_on_success": True, "max_cycles": 25}),
        ("simple_speaker_listener_fast", "simple_speaker_listener", {}),
        ("simple_reference_fast", "simple_reference", {"continuous_actions": True}),
    ],
    ids=["spread", "spread, success ends", "speaker_listener", "reference continuous"],
)
def test_the_lab_steps_the_replica_in_one_call_as_it_steps_mpe2_copy_by_copy(replica, mpe, kwargs, autoreset):
    """Same seeds per copy, same auto-resets (each copy's own stream goes on), same JointStep at every step."""
    from marl_distill.env.joint_vec_env import JointVecEnv
    from marl_distill.env.registry import resolve
    from marl_distill.env.vector_world import VectorJointVecEnv, open_joint_vec_env

    kwargs = {"max_cycles": 7, **kwargs}
    n = 48
    fast = open_joint_vec_env(resolve(replica, kwargs), n, autoreset=autoreset, workers=2)  # workers: not needed
    slow = JointVecEnv(resolve(mpe, kwargs), n, autoreset=autoreset)
    assert isinstance(fast, VectorJointVecEnv)
    seeds = [3, None, 5, 2**31, *range(100, 144)]
    slow.envs[1].reset(seed=11)  # the unseeded copy carries on the stream it has
    fast.world.reset([11], copies=[1])
    got, want = fast.reset(seeds), slow.reset(seeds)
    for a in fast.agents:
        assert np.allclose(got[a], want[a], atol=TOL), f"reset {a}"
    rng = np.random.default_rng(0)
    ended_early = 0
    for t in range(60):
        actions = random_actions(fast.face, rng, n)
        got, want = fast.step(actions), slow.step(actions)
        for field in ("obs", "rewards", "terminated", "truncated", "acting", "left", "present"):
            for a in fast.agents:
                assert np.allclose(getattr(got, field)[a], getattr(want, field)[a], atol=TOL), f"{field} {a} step {t}"
        for a in fast.agents:  # what a truncated learner bootstraps from, where its episode ended
            ended = want.left[a]
            assert np.allclose(got.final_obs[a][ended], want.final_obs[a][ended], atol=TOL), f"final_obs step {t}"
        assert np.array_equal(got.done, want.done) and np.array_equal(fast.finished, slow.finished)
        ended_early += int(got.terminated[fast.agents[0]].sum())
    assert autoreset or fast.finished.all()
    assert ended_early > 0 if kwargs.get("terminate_on_success") else ended_early == 0


def test_a_wrapper_around_a_replica_is_stepped_copy_by_copy_not_skipped():
    """The lab steps the vector face of the env it was given, never the one inside a wrapper (the wrapper's
    changes to observations or rewards would be lost)."""
    from pettingzoo.utils.wrappers import BaseParallelWrapper

    from marl_distill.env.joint_vec_env import JointVecEnv
    from marl_distill.env.vector_world import open_joint_vec_env, vector_face

    inner = fast_mpe.simple_spread()
    assert vector_face(inner) is not None
    assert vector_face(BaseParallelWrapper(inner)) is None
    assert isinstance(open_joint_vec_env(lambda: BaseParallelWrapper(fast_mpe.simple_spread()), 2), JointVecEnv)
