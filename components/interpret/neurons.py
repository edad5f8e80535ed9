"""Neurons (layer, index) and the file that names them (``value_vectors.csv``)."""

from __future__ import annotations

import csv
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from xdetox.errors import DataError

_TRUE = {"true", "1", "yes"}
_FALSE = {"false", "0", "no"}


@dataclass(frozen=True, order=True)
class Neuron:
    """One MLP neuron: the ``index``-th input of block ``layer``'s output projection."""

    layer: int
    index: int


def by_layer(neurons: Iterable[Neuron]) -> dict[int, list[int]]:
    """Distinct indices per layer, sorted (a neuron listed twice is shifted once)."""
    groups: dict[int, set[int]] = {}
    for n in neurons:
        groups.setdefault(n.layer, set()).add(n.index)
    return {layer: sorted(idx) for layer, idx in sorted(groups.items())}


def read_neurons(path: str | Path) -> list[Neuron]:
    """Neurons from a CSV with ``layer`` and ``index`` columns, in file order, without repeats.

    With a ``kept`` column (``value_vectors.csv``), only rows marked true are taken: those are
    the candidates with a positive mean activation. An empty selection is an error: every
    later stage would measure nothing.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError("file not found", path)
    neurons: list[Neuron] = []
    seen: set[Neuron] = set()
    with path.open(encoding="utf-8", newline="") as fh:
        reader = csv.DictReader(fh)
        header = reader.fieldnames or []
        missing = [c for c in ("layer", "index") if c not in header]
        if missing:
            raise DataError(f"missing column(s) {', '.join(map(repr, missing))}", path, 1)
        line = 1
        for row in reader:
            start, line = line + 1, reader.line_num
            if None in row or None in row.values():
                raise DataError(f"expected {len(header)} fields", path, start)
            if "kept" in row:
                flag = row["kept"].strip().lower()
                if flag not in _TRUE | _FALSE:
                    raise DataError(f"field 'kept': expected true/false, got {flag!r}", path, start)
                if flag in _FALSE:
                    continue
            try:
                neuron = Neuron(int(row["layer"]), int(row["index"]))
            except ValueError:
                raise DataError(
                    "fields 'layer' and 'index' must be integers", path, start
                ) from None
            if neuron.layer < 0 or neuron.index < 0:
                raise DataError("negative 'layer' or 'index'", path, start)
            if neuron not in seen:
                seen.add(neuron)
                neurons.append(neuron)
    if not neurons:
        raise DataError("no neurons selected (no row, or no row with kept=true)", path)
    return neurons
