"""Views: what a policy observes of an env, when teachers and students should not see the same thing.

A view is ``local`` (the agent's own observation: the default), ``global`` (the agent's observation with the env's
``state()`` appended: the privileged view a centrally trained teacher may have and a decentrally acting student
may not), ``history:K`` (the agent's own last K observations, newest first: a student's memory, still
decentralized) or a ``module:callable`` (or ``file.py:callable``) mapping ``(env, agent, local observation)`` to a
vector. ``ViewEnv`` wraps a ParallelEnv so that each agent's observation is one view, or several side by side:
teachers train on their view alone (plain SB3 models of that view), while distillation and evaluation play an env
that hands out the teachers' and the students' views together, and each party reads its own columns (``Sliced``).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from functools import partial
from typing import TYPE_CHECKING, Any

import gymnasium as gym
import numpy as np
from pettingzoo.utils.env import ParallelEnv

from marl_distill.errors import UserError
from marl_distill.policy.observations import encoded_space, encoder, has_mask

if TYPE_CHECKING:  # ViewEnv needs numpy and the env only (experiments/deploy_onnx.py plays it without torch)
    from marl_distill.policy.spec import EnvSpec

LOCAL, GLOBAL, HISTORY = "local", "global", "history:"
Factory = Callable[[], Any]
Span = tuple[int, int]


def history_length(view: str) -> int | None:
    """K of a ``history:K`` view (the agent's last K local observations, newest first), else None."""
    if not view.startswith(HISTORY):
        return None
    k = view[len(HISTORY) :]
    return int(k) if k.isdigit() and int(k) >= 1 else 0


def check_view(view: str, where: str) -> None:
    """Refuse a view name that is none of local, global, history:K or a ``module:callable`` spec."""
    if isinstance(view, str) and view.startswith(HISTORY):
        if history_length(view):
            return
        raise UserError(f"{where} = {view!r}: a history view is 'history:K' with K >= 1, e.g. 'history:4'")
    if view in (LOCAL, GLOBAL) or (isinstance(view, str) and ":" in view.strip(":")):
        return
    raise UserError(f"{where} = {view!r} is not a view; use 'local', 'global' or 'package.module:callable'")


def _view_fn(view: str) -> Callable[[Any, str, Any], Any]:
    from marl_distill.env.registry import load_callable

    return load_callable(view)


def _flat(x: Any) -> np.ndarray:
    return np.asarray(x, dtype=np.float32).reshape(-1)


class ViewEnv(ParallelEnv):
    """``env`` with each agent's observation replaced by ``views`` side by side (each flattened, float32).

    The local part is the observation as the lab encodes it (``observations.encoder``: one-hots, scaled images), so
    its columns equal what a local-view policy reads. Action masks (Dict observations) pass through beside it."""

    def __init__(self, env: ParallelEnv, views: Sequence[str]) -> None:
        for view in views:
            check_view(view, "view")
        self.env = env
        self.views = tuple(views)
        self.possible_agents = list(env.possible_agents)
        self.agents: list[str] = []
        self.metadata = getattr(env, "metadata", {})
        self.render_mode = getattr(env, "render_mode", None)
        self._raw = {a: env.observation_space(a) for a in self.possible_agents}
        self._masked = {a for a, sp in self._raw.items() if has_mask(sp)}
        local = {a: (sp["observation"] if a in self._masked else sp) for a, sp in self._raw.items()}
        self._encode = {a: encoder(sp) for a, sp in local.items()}
        self._local = {a: encoded_space(sp, a) for a, sp in local.items()}
        self._history = {v: history_length(v) for v in self.views}
        """Per view: K of a history:K view, else None (read once, not on every step)."""
        self._fns = {v: _view_fn(v) for v in self.views if v not in (LOCAL, GLOBAL) and not self._history[v]}
        self._depth = max([k or 0 for k in self._history.values()])
        self._past: dict[str, np.ndarray] = {}
        """Per agent: its last ``_depth`` encoded local observations, newest first (zeros before the episode)."""
        if GLOBAL in self.views:
            self.state_space = getattr(env, "state_space", None)
            if not callable(getattr(env, "state", None)) or not isinstance(self.state_space, gym.spaces.Box):
                raise UserError(
                    f"{type(env).__name__} has no state() with a Box state_space, so it has no global view; use "
                    "the local view, or give the env a state()"
                )
        sizes = self._sizes = self._probe() if self._fns else {}
        self._bounds: dict[str, list[tuple[np.ndarray, np.ndarray]]] = {}
        for a in self.possible_agents:
            self._bounds[a] = [self._bound(v, a, sizes) for v in self.views]
        self._spaces = {a: self._space(a) for a in self.possible_agents}

    def _probe(self) -> dict[tuple[str, str], int]:
        """Each callable view's size per agent, read off one reset (seed 0)."""
        obs, _ = self.env.reset(seed=0)
        sizes = {}
        for v in self._fns:
            for a in self.possible_agents:
                if a not in obs:
                    raise UserError(f"agent {a!r} is absent at reset, so view {v!r} cannot be sized; use local/global")
                sizes[(v, a)] = self._call(v, a, self._local_raw(a, obs[a])).size
        return sizes

    def _call(self, view: str, agent: str, raw: Any) -> np.ndarray:
        """A callable view's vector; what it raises becomes one line naming the view."""
        try:
            return _flat(self._fns[view](self.env, agent, raw))
        except Exception as exc:  # noqa: BLE001 - a user's callable: one line, not its traceback
            raise UserError(f"view {view!r} failed on agent {agent!r} ({type(exc).__name__}: {exc}); fix it") from None

    def _bound(self, view: str, agent: str, sizes: Mapping[tuple[str, str], int]) -> tuple[np.ndarray, np.ndarray]:
        local = self._local[agent]
        lo, hi = local.low.reshape(-1), local.high.reshape(-1)
        if view == GLOBAL:
            lo = np.concatenate([lo, self.state_space.low.reshape(-1)])
            hi = np.concatenate([hi, self.state_space.high.reshape(-1)])
        elif self._history[view]:  # zeros stand for the steps before the episode began
            k = self._history[view]
            lo, hi = np.tile(np.minimum(lo, 0), k), np.tile(np.maximum(hi, 0), k)
        elif view != LOCAL:
            n = sizes[(view, agent)]
            lo, hi = np.full(n, -np.inf), np.full(n, np.inf)
        return lo.astype(np.float32), hi.astype(np.float32)

    def _space(self, agent: str) -> gym.Space:
        lo = np.concatenate([b[0] for b in self._bounds[agent]])
        hi = np.concatenate([b[1] for b in self._bounds[agent]])
        box = gym.spaces.Box(lo, hi, dtype=np.float32)
        if agent in self._masked:
            return gym.spaces.Dict({"observation": box, "action_mask": self._raw[agent]["action_mask"]})
        return box

    def spans(self, k: int) -> dict[str, Span]:
        """Per agent: the columns of view ``k`` (its index in ``views``) in the observation."""
        out = {}
        for a, bounds in self._bounds.items():
            start = sum(len(b[0]) for b in bounds[:k])
            out[a] = (start, start + len(bounds[k][0]))
        return out

    def observation_space(self, agent: str) -> gym.Space:
        return self._spaces[agent]

    def action_space(self, agent: str) -> gym.Space:
        return self.env.action_space(agent)

    def _local_raw(self, agent: str, obs: Any) -> Any:
        return obs["observation"] if agent in self._masked else obs

    def _view(self, obs: Mapping[str, Any]) -> dict[str, Any]:
        state = _flat(self.env.state()) if GLOBAL in self.views and obs else None
        out = {}
        for a, o in obs.items():
            raw = self._local_raw(a, o)
            local = _flat(self._encode[a](raw))
            if self._depth:
                past = self._past.setdefault(a, np.zeros((self._depth, local.size), np.float32))
                past[1:] = past[:-1].copy()
                past[0] = local
            parts = []
            for v in self.views:
                if v == LOCAL:
                    parts.append(local)
                elif v == GLOBAL:
                    parts += [local, state]
                elif self._history[v]:
                    parts.append(self._past[a][: self._history[v]].reshape(-1))
                else:
                    part = self._call(v, a, raw)
                    if part.size != self._sizes[(v, a)]:
                        raise UserError(
                            f"view {v!r} gave agent {a!r} {part.size} values, {self._sizes[(v, a)]} at reset; a view "
                            "must have one size per agent: fix the callable"
                        )
                    parts.append(part)
            vec = np.concatenate(parts)
            out[a] = {"observation": vec, "action_mask": o["action_mask"]} if a in self._masked else vec
        return out

    def reset(self, seed: int | None = None, options: dict | None = None) -> tuple[dict, dict]:
        obs, infos = self.env.reset(seed=seed, options=options)
        self.agents = list(self.env.agents)
        self._past = {}  # a new episode remembers nothing
        return self._view(obs), infos

    def step(self, actions: dict[str, Any]) -> tuple[dict, dict, dict, dict, dict]:
        obs, rewards, terminations, truncations, infos = self.env.step(actions)
        self.agents = list(self.env.agents)
        return self._view(obs), rewards, terminations, truncations, infos

    def state(self) -> np.ndarray:
        return self.env.state()

    def render(self) -> Any:
        return self.env.render()

    def close(self) -> None:
        self.env.close()

    @property
    def unwrapped(self) -> Any:
        return self.env.unwrapped


def viewed(factory: Factory, views: Sequence[str]) -> ViewEnv:
    """``factory()``'s env seen through ``views`` (picklable as ``partial(viewed, factory, views)``)."""
    from marl_distill.env.joint_vec_env import make_parallel

    return ViewEnv(make_parallel(factory), views)


def global_view(factory: Factory) -> ViewEnv:
    """The global view of ``factory()``'s env."""
    return viewed(factory, (GLOBAL,))


def view_factory(factory: Factory, view: str) -> Factory:
    """The env as a policy of ``view`` alone sees it: ``factory`` itself for the local view (today's behaviour)."""
    return factory if view == LOCAL else partial(viewed, factory, (view,))


class Columns:
    """One party's columns of an env that hands out several views side by side, and the shapes of its own view."""

    def __init__(self, spans: Mapping[str, Span], spec: EnvSpec) -> None:
        self.spans = dict(spans)
        self.shapes = {a: tuple(spec.observation_spaces[a].shape) for a in spec.agents}

    def take(self, obs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Batches of paired observations -> the same rows in this party's view."""
        out = {}
        for a, o in obs.items():
            start, stop = self.spans[a]
            o = np.asarray(o)
            out[a] = o.reshape(len(o), -1)[:, start:stop].reshape(len(o), *self.shapes[a])
        return out


class Sliced:
    """A joint policy that acts on its own view inside an env that hands out several views side by side: it reads
    its columns of each observation, reshaped to its own spaces, and is otherwise the policy it wraps."""

    ACTING = frozenset({"act_single", "act_batch", "act_single_sb3", "numpy_logits", "prepare_single"})
    """Methods that take observations: not forwarded, so nothing times or runs the policy on the wrong columns
    (``own_view`` gives the observations as the wrapped policy takes them)."""

    def __init__(self, policy: Any, columns: Columns) -> None:
        self.inner = policy
        self.columns = columns

    def own_view(self, obs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Batches of paired observations -> the same rows in this policy's view."""
        return self.columns.take(obs)

    def logits(self, obs: Mapping[str, np.ndarray]) -> Any:
        return self.inner.logits(self.own_view(obs))

    def step(self, obs: Mapping[str, np.ndarray], state: Mapping[str, np.ndarray]) -> Any:
        """A recurrent policy's step (``policy.memory``) on its own columns."""
        return self.inner.step(self.own_view(obs), state)

    def __getattr__(self, name: str) -> Any:
        if name in Sliced.ACTING or name == "inner" or name.startswith("__"):
            raise AttributeError(name)
        return getattr(self.inner, name)


class Views:
    """The env as each party sees it: teachers through ``teacher_view``, students through ``student_view``.

    With one view for both, every stage plays that view's env and nothing is sliced. With two, teachers train on
    theirs alone, and distillation and evaluation play ``play`` (the teachers' view, then the students') where
    ``teachers`` / ``students`` wrap each party to read its own columns."""

    def __init__(self, factory: Factory, teacher_view: str = LOCAL, student_view: str = LOCAL) -> None:
        check_view(teacher_view, "teachers.view")
        check_view(student_view, "distill.student_view")
        self.teacher_view, self.student_view = teacher_view, student_view
        self.teacher_factory = view_factory(factory, teacher_view)
        self.student_factory = view_factory(factory, student_view)
        self.teacher_spec = _spec(self.teacher_factory)
        self.student_spec = self.teacher_spec if self.same else _spec(self.student_factory)
        self.play: Factory = self.teacher_factory
        self._columns: tuple[Columns, Columns] | None = None
        """The teachers' and the students' columns of ``play`` (None: one view, nothing to slice)."""
        if not self.same:
            self.play = partial(viewed, factory, (teacher_view, student_view))
            env = self.play()
            self._columns = (Columns(env.spans(0), self.teacher_spec), Columns(env.spans(1), self.student_spec))
            env.close()

    @property
    def same(self) -> bool:
        return self.teacher_view == self.student_view

    def teachers(self, policy: Any) -> Any:
        """``policy`` (teachers) as it acts in ``play``."""
        return policy if self._columns is None else Sliced(policy, self._columns[0])

    def students(self, policy: Any) -> Any:
        """``policy`` (students) as it acts in ``play``."""
        return policy if self._columns is None else Sliced(policy, self._columns[1])

    def student_obs(self, obs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Rows of ``play``'s observations -> the students' view of them (what students are fitted on)."""
        return dict(obs) if self._columns is None else self._columns[1].take(obs)

    def teacher_obs(self, obs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Rows of ``play``'s observations -> the teachers' view of them (what their labels came from)."""
        return dict(obs) if self._columns is None else self._columns[0].take(obs)

    def record(self) -> dict[str, str]:
        return {"teachers": self.teacher_view, "students": self.student_view}


def _spec(factory: Factory) -> EnvSpec:
    from marl_distill.env.joint_vec_env import make_parallel
    from marl_distill.policy.spec import EnvSpec

    env = make_parallel(factory)
    try:
        return EnvSpec.of(env)
    finally:
        env.close()
