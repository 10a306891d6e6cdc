"""What acts: the joint-policy protocol every party implements (teachers, students, random and mixed teams), the
env facts policies read (``EnvSpec``), how raw observations become the vectors policies see, action
distributions, and the numpy runtime every acting network runs through.

Importing this package imports no torch (``observations`` is torch-free, and the env adapters read it): each name
below is imported from its module on first use.
"""

from marl_distill.utils.lazy import lazy_exports

_MODULES = {
    "spec": ("EnvSpec",),
    "observations": ("MASK_KEYS", "decode_batch", "encoded_space", "encoder", "has_mask"),
    "distributions": ("Categorical", "DiagGaussian", "Head", "MASKED_LOGIT", "apply_mask", "head_for"),
    "joint": ("JointPolicy", "MixedTeam", "RandomPolicy", "TeacherEnsemble", "masked_logits", "select_actions"),
    "numpy_mlp": ("NumpyMLP", "Unsupported"),
}
__all__ = sorted(name for names in _MODULES.values() for name in names)
__getattr__, __dir__ = lazy_exports(__name__, _MODULES)
