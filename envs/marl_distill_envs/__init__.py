"""Built-in PettingZoo worlds for marl-distill, registered through the ``marl_distill.envs`` entry points."""
