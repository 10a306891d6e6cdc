"""One numpy runtime for every MLP that acts: students and SB3 teachers' actor networks alike.

Timing two policies through different runtimes (SB3 ``predict`` against a bare numpy forward pass) measures the
runtimes, not the networks. ``NumpyMLP.of`` reads (W, b, activation) from torch modules, so a teacher's actor
and a student run the same code at acting time; anything the walker does not know raises ``Unsupported`` and the
caller falls back to torch, saying so.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

Activation = Callable[[np.ndarray], np.ndarray]


class Unsupported(ValueError):
    """A module or setting the numpy runtime does not reproduce; the message says which (the fallback's reason)."""


def _activation(module: nn.Module) -> tuple[str, Activation | None, float]:
    """numpy twin of a torch activation module (None: identity), and its parameter (slope or alpha; else 0)."""
    if isinstance(module, (nn.Identity, nn.Dropout)):  # dropout acts as identity in eval mode, as SB3 acts
        return "identity", None, 0.0
    if isinstance(module, nn.Tanh):
        return "tanh", np.tanh, 0.0
    if isinstance(module, nn.ReLU):
        return "relu", lambda x: np.maximum(x, np.float32(0)), 0.0
    if isinstance(module, nn.LeakyReLU):
        slope = np.float32(module.negative_slope)
        return "leaky_relu", lambda x: np.where(x >= 0, x, x * slope), float(module.negative_slope)
    if isinstance(module, nn.ELU):
        alpha = np.float32(module.alpha)
        return "elu", lambda x: np.where(x > 0, x, alpha * np.expm1(x)), float(module.alpha)
    if isinstance(module, nn.Sigmoid):
        return "sigmoid", lambda x: 1 / (1 + np.exp(-x)), 0.0
    raise Unsupported(f"module {type(module).__name__} has no numpy twin")


@dataclass(frozen=True)
class Dense:
    """One Linear layer and the activation after it; ``w`` is W^T as a view sharing the tensor's memory, so
    in-place training and ``load_state_dict`` stay visible to the numpy runtime."""

    w: np.ndarray
    b: np.ndarray | None
    activation: str = "identity"
    fn: Activation | None = None
    param: float = 0.0
    """The activation's parameter: leaky_relu's negative slope, elu's alpha (else unused)."""

    @property
    def label(self) -> str:
        """The activation as described, e.g. ``tanh`` or ``leaky_relu(0.1)``."""
        return f"{self.activation}({self.param:g})" if self.activation in ("leaky_relu", "elu") else self.activation


def _flat(modules: tuple[nn.Module, ...]) -> Iterator[nn.Module]:
    for m in modules:
        if isinstance(m, nn.Sequential):
            yield from _flat(tuple(m))
        else:
            yield m


class NumpyMLP:
    """A stack of Linear layers with per-layer activations, run in float32 numpy on (batch, in_dim) rows."""

    def __init__(self, layers: list[Dense]) -> None:
        if not layers:
            raise Unsupported("no Linear layer to run")
        self.layers = layers

    @classmethod
    def of(cls, *modules: nn.Module) -> NumpyMLP:
        """Walk ``modules`` in order (nested ``nn.Sequential`` flattened): Linear layers and known activations."""
        layers: list[Dense] = []
        for m in _flat(modules):
            if isinstance(m, nn.Linear):
                w = m.weight.detach()
                if w.dtype not in (torch.float32, torch.float64) or w.device.type != "cpu":
                    raise Unsupported(f"Linear weights of dtype {w.dtype} on {w.device}")
                b = None if m.bias is None else m.bias.detach().numpy()
                layers.append(Dense(w.numpy().T, b))
                continue
            name, fn, param = _activation(m)
            if fn is None:
                continue
            if not layers or layers[-1].fn is not None:
                raise Unsupported(f"activation {name} not right after a Linear layer")
            last = layers[-1]
            layers[-1] = Dense(last.w, last.b, name, fn, param)
        return cls(layers)

    def __call__(self, x: np.ndarray) -> np.ndarray:
        for layer in self.layers:
            x = x @ layer.w
            if layer.b is not None:
                x = x + layer.b
            if layer.fn is not None:
                x = layer.fn(x)
        return x

    @property
    def in_dim(self) -> int:
        return int(self.layers[0].w.shape[0])

    @property
    def out_dim(self) -> int:
        return int(self.layers[-1].w.shape[1])

    @property
    def macs(self) -> int:
        """Multiply-accumulates per input row: sum of in x out over Linear layers (biases and activations are
        not counted)."""
        return sum(int(layer.w.shape[0]) * int(layer.w.shape[1]) for layer in self.layers)

    @property
    def params(self) -> int:
        return sum(layer.w.size + (0 if layer.b is None else layer.b.size) for layer in self.layers)

    @property
    def weight_bytes(self) -> int:
        """Bytes of the arrays used to act, at their stored precision."""
        return sum(layer.w.nbytes + (0 if layer.b is None else layer.b.nbytes) for layer in self.layers)

    def describe(self) -> str:
        """E.g. ``18-64-64-5 (tanh)``."""
        widths = [self.in_dim] + [int(layer.w.shape[1]) for layer in self.layers]
        acts = sorted({layer.label for layer in self.layers[:-1]}) or ["linear"]
        return f"{'-'.join(map(str, widths))} ({', '.join(acts)})"
