"""``check-env``: is a plugged-in env usable? PettingZoo's own tests, then what they do not look at.

Turn-based (AEC) envs get PettingZoo's AEC tests, then our checks through the parallel view that training uses.

PettingZoo's ``parallel_api_test`` checks the API's shape but not, for instance, that observations lie inside
their declared spaces. We play a few random episodes and report the first violation with its agent and step:
observations outside their space, non-finite rewards, action masks that disagree with the action space or
leave no legal action, and agents that reappear after their episode ended without a reset.
"""

from __future__ import annotations

import contextlib
import io
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import gymnasium as gym
import numpy as np
from pettingzoo.test import api_test, parallel_api_test, parallel_seed_test, seed_test
from pettingzoo.utils.env import AECEnv

from marl_distill.env.turn_based import TurnBasedParallel
from marl_distill.errors import UserError


class EnvViolation(UserError):
    """The env breaks its own declared contract; the message names the agent, the step and what."""


@dataclass
class CheckReport:
    api: str
    episodes: int
    steps: int
    agents: list[str]
    notes: list[str]

    def summary(self) -> str:
        lines = [
            f"ok: {self.api} env, {len(self.agents)} agents ({', '.join(self.agents)}): PettingZoo's API and seed "
            f"tests passed; {self.episodes} random episodes, {self.steps} steps checked"
        ]
        return "\n".join(lines + [f"note: {n}" for n in self.notes])


def _inside(space: gym.Space, obs: Any) -> str | None:
    """Why ``obs`` is not in ``space`` (None when it is). A dtype that only differs in width is accepted."""
    if isinstance(space, gym.spaces.Dict) and isinstance(obs, dict):
        for key, sub in space.spaces.items():
            if key not in obs:
                return f"key {key!r} missing from the observation"
            why = _inside(sub, obs[key])
            if why:
                return f"{key}: {why}"
        return None
    if isinstance(space, gym.spaces.Box):
        arr = np.asarray(obs)
        if arr.shape != space.shape:
            return f"shape {arr.shape}, declared {space.shape}"
        if not np.all(np.isfinite(arr[np.isfinite(space.low) & np.isfinite(space.high)])):
            return "non-finite value in a bounded dimension"
        below, above = arr < space.low, arr > space.high
        if below.any() or above.any():
            idx = int(np.flatnonzero((below | above).reshape(-1))[0])
            return (
                f"value {arr.reshape(-1)[idx]:.4g} at index {idx} outside [{space.low.reshape(-1)[idx]:.4g}, "
                f"{space.high.reshape(-1)[idx]:.4g}]"
            )
        return None
    return None if space.contains(obs) else f"{obs!r} not in {space}"


def _mask_problem(action_space: gym.Space, obs: Any) -> str | None:
    if not (isinstance(obs, dict) and "action_mask" in obs):
        return None
    mask = np.asarray(obs["action_mask"])
    if not isinstance(action_space, gym.spaces.Discrete):
        return f"action_mask given for a non-Discrete action space {action_space}"
    if mask.shape != (action_space.n,):
        return f"action_mask shape {mask.shape}, but the action space has {action_space.n} actions"
    if not np.isin(mask, (0, 1)).all():
        return "action_mask holds values other than 0 and 1"
    if mask.sum() == 0:
        return "action_mask allows no action"
    return None


def _random_action(space: gym.Space, obs: Any, rng: np.random.Generator) -> Any:
    mask = obs["action_mask"] if isinstance(obs, dict) and "action_mask" in obs else None
    return random_action(space, mask, rng)


def random_action(space: gym.Space, mask: Any, rng: np.random.Generator) -> Any:
    """A uniformly random action the env accepts: a legal one where ``mask`` says which (Discrete ``start``
    added), else ``space.sample()``."""
    if isinstance(space, gym.spaces.Discrete):
        legal = np.flatnonzero(np.asarray(mask)) if mask is not None else np.arange(int(space.n))
        return int(space.start) + (int(rng.choice(legal)) if len(legal) else 0)
    return space.sample()


SEEDED = (
    "two copies reset with the same seed played differently: draw every random number from a generator seeded in "
    "reset(seed=...) (self.np_random, _ = gymnasium.utils.seeding.np_random(seed)), never numpy's or Python's "
    "global one (envs/template/my_env.py shows how)"
)
"""The fix for every 'Incorrect ...' of PettingZoo's seed tests but the actions'."""


def _hint(message: str, factory: Callable[[], Any]) -> str:
    """What usually causes a failure of PettingZoo's tests, and the fix ('' where we know of none)."""
    if message.startswith("Incorrect action seeding"):
        one, two = factory(), factory()
        shared = [a for a in one.possible_agents if one.action_space(a) is two.action_space(a)]
        if shared:
            return (
                f"two envs share one action space object for {shared[0]!r} (made at module or class level), so "
                "seeding one reseeds the other: build each env's spaces in its __init__"
            )
        return "something reseeds or rebuilds the action spaces in reset() or step(): leave seeding them to the caller"
    return SEEDED if message.startswith("Incorrect") else ""


def _pettingzoo_tests(factory: Callable[[], Any], env: Any) -> str:
    try:
        with contextlib.redirect_stdout(io.StringIO()):  # they print "Passed ..."; our summary says it
            if isinstance(env, AECEnv):
                api_test(env, num_cycles=200)
                seed_test(factory)
                return "aec"
            parallel_api_test(env, num_cycles=200)
            parallel_seed_test(factory)
            return "parallel"
    except AssertionError as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else "an assertion failed"
        hint = _hint(first, factory)
        raise EnvViolation(f"PettingZoo's API test failed: {first}" + (f"; {hint}" if hint else "")) from None


def check_env(factory: Callable[[], Any], *, episodes: int = 3, seed: int = 0, max_steps: int = 2000) -> CheckReport:
    """Run PettingZoo's tests and our deeper checks; raise ``EnvViolation`` at the first problem."""
    env = factory()
    api = _pettingzoo_tests(factory, env)
    env = factory()
    notes: list[str] = []
    if api == "aec":  # our checks run on the view training uses: only the player to move acts
        env = TurnBasedParallel(env)
        notes.append("turn-based (AEC) env: played through marl-distill's parallel view, one mover per step")
    rng = np.random.default_rng(seed)
    steps = 0
    for episode in range(episodes):
        obs, _ = env.reset(seed=seed + episode)
        for agent in env.possible_agents:
            env.action_space(agent).seed(seed + episode)
        gone: set[str] = set()
        _check_obs(env, obs, gone, f"reset of episode {episode}")
        for t in range(1, max_steps + 1):
            if not env.agents:
                break
            actions = {a: _random_action(env.action_space(a), obs[a], rng) for a in env.agents}
            obs, rewards, terms, truncs, _ = env.step(actions)
            steps += 1
            where = f"step {t} of episode {episode}"
            _check_obs(env, obs, gone, where)
            for agent, r in rewards.items():
                if not math.isfinite(float(r)):
                    raise EnvViolation(f"agent {agent!r}, {where}: reward {r} is not finite")
            gone |= {a for a in env.possible_agents if terms.get(a) or truncs.get(a)}
        else:
            notes.append(f"episode {episode} did not end within {max_steps} steps")
    if any(
        np.dtype(env.observation_space(a).dtype) != np.float32
        for a in env.possible_agents
        if isinstance(env.observation_space(a), gym.spaces.Box)
    ):
        notes.append("some observations are not float32; they are converted for the networks")
    return CheckReport(api, episodes, steps, list(env.possible_agents), notes)


def _check_obs(env: Any, obs: dict[str, Any], gone: set[str], where: str) -> None:
    for agent, o in obs.items():
        if agent not in env.possible_agents:
            raise EnvViolation(f"agent {agent!r}, {where}: not among possible_agents {list(env.possible_agents)}")
        if agent in gone:
            raise EnvViolation(f"agent {agent!r}, {where}: came back after its episode ended, without a reset")
        why = _inside(env.observation_space(agent), o)
        if why:
            raise EnvViolation(f"agent {agent!r}, {where}: observation outside its declared space ({why})")
        problem = _mask_problem(env.action_space(agent), o)
        if problem:
            raise EnvViolation(f"agent {agent!r}, {where}: {problem}")


def describe_envs() -> list[str]:
    """``marl-distill envs``: per registered env its id, api, agent count and source, then each group of agents
    with the same spaces on one line (an env that cannot be built is one line saying why)."""
    from marl_distill.env.joint_vec_env import make_parallel
    from marl_distill.env.registry import all_envs, resolve
    from marl_distill.env.turn_based import TurnBasedParallel
    from marl_distill.policy.spec import EnvSpec

    lines = []
    entries = all_envs()
    width = max(map(len, entries), default=0)
    for env_id, entry in entries.items():
        try:
            env = make_parallel(resolve(env_id))
            spec = EnvSpec.of(env)
        except (UserError, ImportError) as exc:
            lines.append(f"{env_id:<{width}}  unavailable: {exc}  [{entry.source}]")
            continue
        api = "aec" if isinstance(env, TurnBasedParallel) else "parallel"
        lines.append(f"{env_id:<{width}}  {api:<8}  {len(spec.agents)} agents  [{entry.source}]")
        rows = {a: (f"{spec.observation_spaces[a]}{' +mask' if a in spec.masked else ''}", str(spec.action_spaces[a]))
                for a in spec.agents}  # fmt: skip
        groups: dict[tuple[str, str], list[str]] = {}
        for agent, spaces in rows.items():
            groups.setdefault(spaces, []).append(agent)
        names = {spaces: ", ".join(agents) for spaces, agents in groups.items()}
        name_width = max(map(len, names.values()))
        obs_width = max(len(obs) for obs, _ in groups)
        for (obs, act), who in names.items():
            lines.append(f"{'':<{width}}    {who:<{name_width}}  obs {obs:<{obs_width}}  act {act}")
    return lines
