"""Whole-model transfers counted from compiled specs (pipelines/transfers.py).

Each Model input or output of a container task is one transfer on a cluster (the launcher
downloads inputs and uploads outputs); tasks in a ParallelFor count once per language.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from xdetox.config import load_config
from xdetox.pipelines.compile import compile_pipeline
from xdetox.pipelines.transfers import count_model_transfers, main, model_transfers

CONFIGS = Path(__file__).resolve().parent.parent / "pipelines" / "configs"
GKE = CONFIGS / "cluster" / "gke-a100.yaml"


def _spec(tmp_path: Path, paths, overrides=(), pipeline: str = "detox") -> dict:
    out = compile_pipeline(load_config(paths, list(overrides)), tmp_path / "p.yaml", pipeline)
    return next(yaml.safe_load_all(out.read_text()))


def _model_output() -> dict:
    return {"artifacts": {"model": {"artifactType": {"schemaTitle": "system.Model"}}}}


def test_counts_inputs_outputs_loops_and_nested_dags():
    spec = {
        "root": {
            "inputDefinitions": {"parameters": {"languages": {"defaultValue": ["a", "b", "c"]}}},
            "dag": {"tasks": {
                "load": {"componentRef": {"name": "comp-load"}},
                "import": {"componentRef": {"name": "comp-importer"}},
                "loop": {"componentRef": {"name": "comp-loop"},
                         "parameterIterator": {"items": {"inputParameter": "languages"}}},
                "fixed": {"componentRef": {"name": "comp-fixed"},
                          "parameterIterator": {"items": {"raw": json.dumps([1, 2])}}},
            }},
        },
        "components": {
            "comp-load": {"executorLabel": "exec-load", "outputDefinitions": _model_output()},
            "comp-importer": {"executorLabel": "exec-importer",
                              "outputDefinitions": {"artifacts": {"artifact": {
                                  "artifactType": {"schemaTitle": "system.Model"}}}}},
            "comp-use": {"executorLabel": "exec-use", "inputDefinitions": {"artifacts": {
                "model": {"artifactType": {"schemaTitle": "system.Model"}},
                "optional": {"artifactType": {"schemaTitle": "system.Model"}},
                "data": {"artifactType": {"schemaTitle": "system.Dataset"}}}}},
            "comp-loop": {"dag": {"tasks": {"sub": {"componentRef": {"name": "comp-sub"}}}}},
            "comp-sub": {"dag": {"tasks": {"use": {
                "componentRef": {"name": "comp-use"},
                "inputs": {"artifacts": {"model": {}, "data": {}}}}}}},
            "comp-fixed": {"dag": {"tasks": {"use": {
                "componentRef": {"name": "comp-use"}, "inputs": {"artifacts": {"model": {}}}}}}},
        },
        "deploymentSpec": {"executors": {
            "exec-importer": {"importer": {"artifactUri": {"runtimeParameter": "uri"}}},
            "exec-load": {"container": {}}, "exec-use": {"container": {}}}},
    }  # fmt: skip
    found = {(t.task, t.artifact, t.direction): t.times for t in model_transfers(spec)}
    # the importer moves nothing; the unconnected optional input moves nothing
    assert found == {("load", "model", "out"): 1, ("loop/sub/use", "model", "in"): 3,
                     ("fixed/use", "model", "in"): 2}  # fmt: skip
    assert count_model_transfers(spec) == 6
    assert count_model_transfers(spec, fan_out=17) == 20


def test_toy_detox_run(tmp_path):
    spec = _spec(tmp_path, None)
    # load 1 out; train 1 in, 1 out; merge 2 in, 1 out (LoRA); per language: generate ×2 and
    # the metrics' reference model. The preference data reads the tokenizer, not the model.
    assert count_model_transfers(spec) == 1 + 2 + 3 + 3 * 6
    assert not [t for t in model_transfers(spec) if t.task == "prepare-data"]


def test_xg_recipe_on_gke(tmp_path, capsys):
    spec = _spec(tmp_path, [CONFIGS / "xg-mgpt.yaml", GKE])
    # full fine-tuning: no merge; 17 languages × (generate base, generate tuned); perplexity
    # and distinct-n use mT5-XL, so the metrics task gets no mGPT. (Before sub-pipelines, the
    # importer and the optional reference model this recipe compiled to 58: load 1,
    # prepare-data 1, train 2, merge 3, 17 × 3.)
    assert count_model_transfers(spec) == 1 + 2 + 2 * 17
    assert not [t for t in model_transfers(spec) if t.task.endswith("metrics")]
    assert main([str(tmp_path / "p.yaml")]) == 0
    assert capsys.readouterr().out.splitlines()[-1] == (
        "37 whole-model transfers (17 languages)"
    )


def test_metrics_read_the_base_model_only_when_they_use_it(tmp_path):
    # Perplexity under the base model (the default) needs it in every language's metrics task.
    spec = _spec(tmp_path, [CONFIGS / "xg-mgpt.yaml", GKE], [
        "metrics.perplexity_method=causal-conditional", "metrics.perplexity_model=null",
    ])  # fmt: skip
    assert count_model_transfers(spec) == 1 + 2 + 3 * 17


@pytest.mark.parametrize(("base", "expected"), [("ai-forever/mGPT", 37), ("gs://b/mGPT", 36)])
def test_gcs_base_model_is_not_copied(tmp_path, base, expected):
    spec = _spec(tmp_path, [CONFIGS / "xg-mgpt.yaml", GKE], [f"model.base={base}"])
    assert count_model_transfers(spec) == expected
