"""Count whole-model transfers in a compiled pipeline spec.

On a cluster every task runs in its own pod: KFP's launcher downloads each input artifact from
the pipeline root (or the artifact's own ``gs://`` URI) before the task starts and uploads each
output artifact afterwards ("Data handling", KFP artifacts,
https://www.kubeflow.org/docs/components/pipelines/user-guides/data-handling/artifacts/). For a
multi-gigabyte model each of those is a transfer worth counting. This module counts, from the
compiled IR alone:

- one transfer per ``system.Model`` input a container task actually receives (an optional
  input left unconnected moves nothing) and per ``system.Model`` output it writes;
- none for an importer task: it only records where the model already lies;
- tasks inside a ``ParallelFor`` once per iteration (``fan_out``: the number of languages),
  nested sub-pipelines (pipelines as components) followed into their DAGs.

Usage: ``python -m xdetox.pipelines.transfers compiled.yaml`` prints the total and each task.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

MODEL_SCHEMA = "system.Model"


@dataclass(frozen=True)
class Transfer:
    """One Model input or output of one task, ``times`` times (loop iterations)."""

    task: str  # path of task names from the root DAG, e.g. for-loop-1/evaluate-language/generate
    artifact: str
    direction: str  # "in" or "out"
    times: int


def _loop_size(task: dict, fan_out: int) -> int:
    iterator = task.get("parameterIterator") or task.get("artifactIterator")
    if iterator is None:
        return 1
    raw = iterator.get("items", {}).get("raw")
    return len(json.loads(raw)) if raw else fan_out


def _model_artifacts(definitions: dict) -> list[str]:
    artifacts = definitions.get("artifacts", {})
    return [
        name
        for name, spec in artifacts.items()
        if spec.get("artifactType", {}).get("schemaTitle") == MODEL_SCHEMA
    ]


def _walk(spec: dict, dag: dict, prefix: str, times: int, fan_out: int) -> list[Transfer]:
    found: list[Transfer] = []
    executors = spec.get("deploymentSpec", {}).get("executors", {})
    for name, task in sorted(dag.get("tasks", {}).items()):
        component = spec["components"][task["componentRef"]["name"]]
        path = f"{prefix}{name}"
        if "dag" in component:
            found += _walk(spec, component["dag"], f"{path}/", times * _loop_size(task, fan_out),
                           fan_out)  # fmt: skip
            continue
        if "importer" in executors.get(component.get("executorLabel", ""), {}):
            continue
        connected = task.get("inputs", {}).get("artifacts", {})
        for artifact in _model_artifacts(component.get("inputDefinitions", {})):
            if artifact in connected:
                found.append(Transfer(path, artifact, "in", times))
        for artifact in _model_artifacts(component.get("outputDefinitions", {})):
            found.append(Transfer(path, artifact, "out", times))
    return found


def default_fan_out(spec: dict) -> int:
    """The number of languages: the length of the root ``languages`` parameter's default."""
    params = spec.get("root", {}).get("inputDefinitions", {}).get("parameters", {})
    return len(params.get("languages", {}).get("defaultValue") or []) or 1


def model_transfers(spec: dict, fan_out: int | None = None) -> list[Transfer]:
    """Every Model input/output of every task in ``spec`` (the first YAML document)."""
    n = default_fan_out(spec) if fan_out is None else fan_out
    return _walk(spec, spec["root"]["dag"], "", 1, n)


def count_model_transfers(spec: dict, fan_out: int | None = None) -> int:
    """The total number of whole-model transfers one run of ``spec`` makes."""
    return sum(t.times for t in model_transfers(spec, fan_out))


def load_spec(path: str | Path) -> dict[str, Any]:
    """The pipeline spec (first YAML document) of a compiled pipeline file."""
    with open(path, encoding="utf-8") as handle:
        return next(yaml.safe_load_all(handle))


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("usage: python -m xdetox.pipelines.transfers COMPILED.yaml", file=sys.stderr)
        return 2
    spec = load_spec(args[0])
    transfers = model_transfers(spec)
    for t in transfers:
        print(f"{t.times:>4} × {t.direction:<3} {t.task}.{t.artifact}")
    total = sum(t.times for t in transfers)
    print(f"{total} whole-model transfers ({default_fan_out(spec)} languages)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
