"""Forward pre-hooks on the MLP output projections: shift or record neuron activations.

A pre-hook sees the projection's input, which is exactly the neuron activation vector (see
:mod:`.architectures`); returning a new input changes what the projection writes into the
residual stream. Hooks run in registration order, so a recorder entered *inside* an offset
context sees the shifted activations.

Both helpers are context managers that remove their hooks on exit, also after an exception:
a stray hook would silently change every later forward pass of the model.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from typing import Any, Literal

import torch
from torch.utils.hooks import RemovableHandle

from xdetox.components.interpret.architectures import Architecture
from xdetox.components.interpret.neurons import Neuron, by_layer


def _check(arch: Architecture, neurons: Sequence[Neuron]) -> None:
    for n in neurons:
        arch.check_neuron(n.layer, n.index, "neurons")


@contextlib.contextmanager
def neuron_offset(arch: Architecture, neurons: Sequence[Neuron], offset: float) -> Iterator[None]:
    """Add ``offset`` to each neuron's activation at every position while the block runs.

    Every position means the prompt's and, during generation, each new token's (as in XG). The
    input is copied before it is changed: the tensor may be shared with other code.
    """
    _check(arch, neurons)
    handles: list[RemovableHandle] = []

    def make_hook(indices: list[int]):
        cache: dict[torch.device, torch.Tensor] = {}

        def hook(_module: Any, args: tuple[Any, ...]) -> tuple[Any, ...]:
            x = args[0]
            idx = cache.get(x.device)
            if idx is None:
                idx = cache[x.device] = torch.tensor(indices, device=x.device)
            shifted = x.clone()
            shifted[..., idx] += offset
            return (shifted, *args[1:])

        return hook

    try:
        for layer, indices in by_layer(neurons).items():
            proj = arch.projection(layer)
            handles.append(proj.register_forward_pre_hook(make_hook(indices)))
        yield
    finally:
        for handle in handles:
            handle.remove()


class ActivationRecorder(contextlib.AbstractContextManager):
    """Record chosen neurons' activations on every forward pass while active.

    ``position="last"`` keeps the last position of each call (``[batch, n_neurons]``): with a
    left-padded batch under ``generate``, call ``s`` is the position that predicts new token
    ``s``. ``position="all"`` keeps every position (``[batch, seq, n_neurons]``).
    Values are copied to the CPU as float32, columns in the order of ``neurons``.
    """

    def __init__(
        self,
        arch: Architecture,
        neurons: Sequence[Neuron],
        position: Literal["last", "all"] = "last",
    ):
        _check(arch, neurons)
        self.arch = arch
        self.neurons = list(neurons)
        self.position = position
        self._groups = by_layer(self.neurons)
        self.calls: dict[int, list[torch.Tensor]] = {layer: [] for layer in self._groups}
        self._handles: list[RemovableHandle] = []

    def __enter__(self) -> ActivationRecorder:
        for layer, indices in self._groups.items():
            self._handles.append(
                self.arch.projection(layer).register_forward_pre_hook(self._hook(layer, indices))
            )
        return self

    def __exit__(self, *exc: object) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles.clear()

    def _hook(self, layer: int, indices: list[int]):
        def hook(_module: Any, args: tuple[Any, ...]) -> None:
            x = args[0]
            if self.position == "last":
                x = x[:, -1, :]
            self.calls[layer].append(x[..., indices].detach().float().cpu())

        return hook

    @property
    def n_calls(self) -> int:
        """Forward passes seen (the same for every hooked layer)."""
        counts = {len(v) for v in self.calls.values()}
        if len(counts) != 1:
            raise RuntimeError(f"hooked layers saw different numbers of forward passes: {counts}")
        return counts.pop()

    def stacked(self) -> torch.Tensor:
        """``[batch, calls, n_neurons]`` for "last"; for "all", the single call's
        ``[batch, seq, n_neurons]`` (several calls of different lengths cannot be stacked)."""
        columns: list[torch.Tensor] = []
        position_in_layer = {
            layer: {idx: j for j, idx in enumerate(indices)}
            for layer, indices in self._groups.items()
        }
        if self.position == "last":
            per_layer = {layer: torch.stack(calls, dim=1) for layer, calls in self.calls.items()}
        else:
            if self.n_calls != 1:
                raise RuntimeError("position='all' keeps one forward pass; record one call only")
            per_layer = {layer: calls[0] for layer, calls in self.calls.items()}
        for n in self.neurons:
            columns.append(per_layer[n.layer][..., position_in_layer[n.layer][n.index]])
        return torch.stack(columns, dim=-1)
