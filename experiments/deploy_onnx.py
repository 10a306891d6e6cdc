"""Deployment without the lab: play a run's exported teams with onnxruntime, numpy and the env alone.

    marl-distill export RUN_DIR                      # writes students/NAME/student.onnx and teachers/teachers.onnx
    python experiments/deploy_onnx.py RUN_DIR [--policy NAME] [--int8]

Each exported team plays the run's evaluation episodes (the same reset seeds ``evaluate`` used, from the run's seed
tree) and its mean team return is printed beside metrics.json's figure for it. The script imports neither torch
nor stable_baselines3 (it checks ``sys.modules`` at the end and exits 1 if either was loaded): from the lab it
takes only the env registry, the AEC-to-parallel view and the seed tree, which need numpy and the env.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import gymnasium as gym
import numpy as np
import onnxruntime as ort
from pettingzoo.utils.env import AECEnv

from marl_distill.env.registry import resolve
from marl_distill.env.turn_based import TurnBasedParallel
from marl_distill.env.views import LOCAL, ViewEnv
from marl_distill.utils import seeding

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib


def session(path: Path) -> ort.InferenceSession:
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    opts.log_severity_level = 3
    return ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])


def placeholder(env, agent: str, meta: dict) -> np.ndarray:
    """A valid input for an agent not seen yet this episode (the graph runs every agent; its action is not used)."""
    space = env.observation_space(agent)
    if isinstance(space, gym.spaces.Dict) and "action_mask" in space.spaces:
        space = space["observation"]
    start = int(space.start) if isinstance(space, gym.spaces.Discrete) else 0
    return np.full(meta["obs_shape"][1:], start, meta["obs_dtype"])


def _n_actions(space) -> int:
    return int(space.n) if isinstance(space, gym.spaces.Discrete) else 1


def play(sess: ort.InferenceSession, factory, seeds: list[int], view: str = LOCAL) -> np.ndarray:
    """Team return of each episode, summed the way evaluate sums it (float32 rewards into float64 per agent).
    ``view``: what the team observes (a privileged teacher team reads its global view; students their own).
    A recurrent (GRU) team's states start at zero each episode and move only for the agents that acted."""
    meta = json.loads(sess.get_modelmeta().custom_metadata_map["marl_distill"])
    per = meta["per_agent"]
    env = factory()
    if isinstance(env, AECEnv):  # a turn-based env: the lab's parallel view
        env = TurnBasedParallel(env)
    if view != LOCAL:
        env = ViewEnv(env, (view,))
    agents = list(meta["agents"])
    returns = {a: np.zeros(len(seeds)) for a in agents}
    action_outputs = [per[a]["action_output"] for a in agents]
    carried = [a for a in agents if per[a].get("state_input")]
    outputs = action_outputs + [per[a]["state_output"] for a in carried]
    for k, seed in enumerate(seeds):
        obs, infos = env.reset(seed=seed)
        state = {a: np.zeros((1, per[a]["state_size"]), np.float32) for a in carried}
        last = {a: placeholder(env, a, per[a]) for a in agents}
        masks = {a: np.ones(_n_actions(env.action_space(a)), bool) for a in agents}
        while env.agents:
            for a, o in obs.items():  # agents absent from this step's observations keep their last one
                if isinstance(o, dict):
                    masks[a] = np.asarray(o["action_mask"]).astype(bool)
                    o = o["observation"]
                last[a] = np.asarray(o, dtype=per[a]["obs_dtype"])
            feeds = {}
            for a in agents:
                feeds[per[a]["obs_input"]] = last[a][None]
                if per[a]["mask_input"]:
                    feeds[per[a]["mask_input"]] = masks[a][None]
                if a in state:
                    feeds[per[a]["state_input"]] = state[a]
            result = sess.run(outputs, feeds)
            actions = dict(zip(agents, (x[0] for x in result[: len(agents)])))
            for a, new in zip(carried, result[len(agents) :]):  # only an agent that acts moves its state
                if a in env.agents and (infos.get(a) or {}).get("acting", True):
                    state[a] = new
            obs, rewards, _, _, infos = env.step({a: actions[a] for a in env.agents})
            for a in agents:
                returns[a][k] += np.float32(rewards.get(a, 0.0))
    env.close()
    return np.sum([returns[a] for a in agents], axis=0)


def view_of(run_dir: Path, cfg: dict, name: str) -> str:
    """The view a team was trained or distilled on, as its teachers.json / student.json records it."""
    if name == "teacher":
        record = Path(cfg.get("teachers_from") or run_dir) / "teachers" / "teachers.json"
    else:
        record = run_dir / "students" / name / "student.json"
    return json.loads(record.read_text()).get("view", LOCAL) if record.is_file() else LOCAL


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_dir", type=Path)
    parser.add_argument("--policy", action="append", help="student name or 'teacher' (default: every export)")
    parser.add_argument("--int8", action="store_true", help="play the int8 exports (*.int8.onnx)")
    args = parser.parse_args()
    cfg = tomllib.loads((args.run_dir / "config.toml").read_text())
    ev = cfg["evaluate"]
    factory = resolve(cfg["env"]["id"], cfg["env"]["kwargs"])
    suffix = ".int8.onnx" if args.int8 else ".onnx"
    own = args.run_dir / "teachers" / f"teachers{suffix}"  # export writes beside the run's teachers, or at the
    files = {"teacher": own if own.is_file() else args.run_dir / f"teachers{suffix}"}  # top of a run that borrows
    for folder in sorted((args.run_dir / "students").glob("*")):
        files[folder.name] = folder / f"student{suffix}"
    wanted = args.policy or [n for n, f in files.items() if f.is_file()]
    metrics_file = args.run_dir / "metrics.json"
    metrics = json.loads(metrics_file.read_text()) if metrics_file.is_file() else {}
    if not wanted:
        print(f"error: no exports in {args.run_dir}; run marl-distill export {args.run_dir} first", file=sys.stderr)
        return 2
    for name in wanted:
        if not files.get(name, Path()).is_file():
            print(f"error: no export for {name!r} in {args.run_dir}; run marl-distill export first", file=sys.stderr)
            return 2
        lab_name = f"{name}-int8" if args.int8 else name
        lab_return = metrics.get(lab_name, {}).get("team_return", {})
        episodes = lab_return.get("episodes", ev["episodes"])  # evaluate --episodes may have played fewer
        seeds = seeding.int_seeds(ev["seed"], seeding.EVALUATE, seeding.EPISODES, n=episodes)
        team = play(session(files[name]), factory, seeds, view_of(args.run_dir, cfg, name))
        lab = lab_return.get("mean")
        verdict = "equal" if lab is not None and abs(team.mean() - lab) <= 1e-9 else "DIFFERENT"
        same = "" if lab is None else f"  evaluate: {lab:.6f}  {verdict}"
        print(f"{name:>10} ({files[name].name}): team return {team.mean():.6f} over {len(seeds)} episodes{same}")
    loaded = [m for m in ("torch", "stable_baselines3") if m in sys.modules]
    print(f"imported torch or stable_baselines3: {loaded or 'neither'}")
    return 1 if loaded else 0


if __name__ == "__main__":
    sys.exit(main())
