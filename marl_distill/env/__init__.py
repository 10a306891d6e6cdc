"""How the lab opens and steps any PettingZoo env: the registry of env ids, turn-based and AEC games as parallel
envs, what each party observes (views), copies stepped in lockstep in this process or in workers, and the checker
for plugged-in envs. The worlds themselves live in the top-level ``envs/`` folder (package ``marl_distill_envs``).

Importing this package imports no torch (deployment with onnxruntime alone reads the registry and views): each
name below is imported from its module on first use.
"""

from marl_distill.utils.lazy import lazy_exports

_MODULES = {
    "registry": ("ENTRY_POINT_GROUP", "EnvEntry", "all_envs", "load_callable", "resolve"),
    "aec_cycle": ("CycleParallel", "cycled"),
    "turn_based": ("TurnBasedParallel",),
    "views": ("GLOBAL", "LOCAL", "ViewEnv", "Views", "check_view", "view_factory", "viewed"),
    "joint_vec_env": ("JointStep", "JointVecEnv", "make_parallel"),
    "subproc_joint_vec_env": ("SubprocJointVecEnv",),
    "checker": ("CheckReport", "check_env", "describe_envs", "random_action"),
}
__all__ = sorted(name for names in _MODULES.values() for name in names)
__getattr__, __dir__ = lazy_exports(__name__, _MODULES)
