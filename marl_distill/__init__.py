"""marl-distill: distill per-agent SB3 teachers into compact multi-agent students."""

__version__ = "0.1.0"
