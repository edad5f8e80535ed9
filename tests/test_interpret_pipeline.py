"""The interpret pipeline: its compiled IR, the toy inputs, joining per-language sweeps, and one
real local run on the toy world with KFP's local runner (through the real CLI)."""

from __future__ import annotations

import json
import math
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from kfp import compiler

from xdetox.components.interpret.alignment import read_parallel
from xdetox.components.interpret.artifact_values import numeric, probe_confusion, probe_roc
from xdetox.components.interpret.intervention_merge import merge_interventions
from xdetox.components.interpret.intervention_table import write_intervention
from xdetox.components.interpret.probe_data import read_labelled_csv
from xdetox.config import load_config
from xdetox.errors import ConfigError, DataError
from xdetox.pipelines.interpret import INTERPRET_PARAMETER_SECTIONS, build_interpret_pipeline
from xdetox.pipelines.registry import PARAMETER_SECTIONS, PIPELINES
from xdetox.toy.interpret_data import toy_jigsaw_path, toy_parallel_path

REPO = Path(__file__).resolve().parent.parent
CONFIGS = REPO / "pipelines" / "configs"
TOY = [CONFIGS / "toy-interpret.yaml"]
XG = [CONFIGS / "xg-mgpt-interpret.yaml", CONFIGS / "cluster" / "gke-a100.yaml"]


def _compile(tmp_path: Path, paths, overrides=None) -> dict:
    out = tmp_path / "interpret.yaml"
    compiler.Compiler().compile(build_interpret_pipeline(load_config(paths, overrides)), str(out))
    docs = list(yaml.safe_load_all(out.read_text()))
    spec = docs[0]
    spec["_platform"] = docs[1] if len(docs) > 1 else {}
    return spec


def _graph(spec: dict) -> dict:
    """The interpret sub-pipeline's DAG (pipelines/interpret_graph.py)."""
    return spec["components"]["comp-interpret"]["dag"]


def _sweep(spec: dict) -> dict:
    """The DAG of the sweep's ParallelFor inside the interpret sub-pipeline."""
    loop = _graph(spec)["tasks"]["for-loop-1"]["componentRef"]["name"]
    return spec["components"][loop]["dag"]


def _component(spec: dict, task: str, dag: dict | None = None) -> dict:
    dag = dag or _graph(spec)
    return spec["components"][dag["tasks"][task]["componentRef"]["name"]]


def _artifact_types(component: dict, side: str) -> dict[str, str]:
    defs = component.get(f"{side}Definitions", {}).get("artifacts", {})
    return {name: d["artifactType"]["schemaTitle"] for name, d in defs.items()}


@pytest.fixture(scope="module")
def toy_spec(tmp_path_factory) -> dict:
    return _compile(tmp_path_factory.mktemp("toy"), TOY)


@pytest.fixture(scope="module")
def xg_spec(tmp_path_factory) -> dict:
    return _compile(tmp_path_factory.mktemp("xg"), XG)


# --- compiled IR ------------------------------------------------------------------------------


def test_every_stage_is_in_the_pipeline(toy_spec):
    assert set(toy_spec["root"]["dag"]["tasks"]) == {"load-model", "prepare-prompts", "interpret"}
    tasks = set(_graph(toy_spec)["tasks"])
    assert tasks == {
        "train-probe", "find-value-vectors", "for-loop-1", "combine-interventions",
        "measure-activations", "measure-alignment", "interpret-report",
    }  # fmt: skip
    assert set(_sweep(toy_spec)["tasks"]) == {"intervene"}
    # Without interpret.tuned_model there is no second model and no parameter for one.
    assert "tuned_model" not in toy_spec["root"]["inputDefinitions"]["parameters"]


def test_stages_pass_typed_artifacts(toy_spec):
    probe = _component(toy_spec, "train-probe")
    assert _artifact_types(probe, "output") == {
        "probe": "system.Model",
        "metrics": "system.Metrics",
        "roc": "system.ClassificationMetrics",
    }
    vectors = _component(toy_spec, "find-value-vectors")
    assert _artifact_types(vectors, "input") == {
        "model": "system.Model",
        "probe": "system.Model",
        "prompts": "system.Dataset",
    }
    assert _artifact_types(vectors, "output") == {
        "table": "system.Dataset",
        "results": "system.Dataset",
        "html": "system.HTML",
        "metrics": "system.Metrics",
    }
    for task in ("combine-interventions", "measure-activations", "measure-alignment"):
        outputs = _artifact_types(_component(toy_spec, task), "output")
        assert outputs == {
            "results": "system.Dataset",
            "html": "system.HTML",
            "metrics": "system.Metrics",
        }, task
    report = _component(toy_spec, "interpret-report")
    assert _artifact_types(report, "output") == {
        "html": "system.HTML",
        "markdown": "system.Markdown",
    }
    outputs = toy_spec["root"]["outputDefinitions"]["artifacts"]
    assert {k: v["artifactType"]["schemaTitle"] for k, v in outputs.items()} == {
        "report": "system.HTML",
        "markdown": "system.Markdown",
    }


def test_value_vector_table_feeds_the_sweep_and_the_activations(toy_spec):
    dag = _graph(toy_spec)["tasks"]
    loop = _sweep(toy_spec)["tasks"]
    neurons = loop["intervene"]["inputs"]["artifacts"]["neurons"]
    assert neurons["componentInputArtifact"] == "pipelinechannel--find-value-vectors-table"
    act = dag["measure-activations"]["inputs"]["artifacts"]["neurons"]["taskOutputArtifact"]
    assert act == {"outputArtifactKey": "table", "producerTask": "find-value-vectors"}
    probe_in = dag["find-value-vectors"]["inputs"]["artifacts"]["probe"]["taskOutputArtifact"]
    assert probe_in == {"outputArtifactKey": "probe", "producerTask": "train-probe"}
    parts = dag["combine-interventions"]["inputs"]["artifacts"]["parts"]["taskOutputArtifact"]
    assert parts == {"outputArtifactKey": "pipelinechannel--intervene-results",
                     "producerTask": "for-loop-1"}  # fmt: skip


def test_sweep_iterates_over_the_languages(toy_spec, xg_spec):
    loop_task = _graph(xg_spec)["tasks"]["for-loop-1"]
    assert loop_task["parameterIterator"]["items"]["inputParameter"] == "pipelinechannel--languages"
    call = xg_spec["root"]["dag"]["tasks"]["interpret"]["inputs"]["parameters"]["languages"]
    assert call == {"componentInputParameter": "languages"}
    assert loop_task["iteratorPolicy"]["parallelismLimit"] == 8  # from the cluster file
    params = xg_spec["root"]["inputDefinitions"]["parameters"]
    assert len(params["languages"]["defaultValue"]) == 17
    toy_params = toy_spec["root"]["inputDefinitions"]["parameters"]
    assert toy_params["languages"]["defaultValue"] == ["en", "de", "es", "fr", "ru", "zh-hans"]


def test_recipe_values_are_the_parameter_defaults(xg_spec, tmp_path):
    params = xg_spec["root"]["inputDefinitions"]["parameters"]
    defaults = {k: v.get("defaultValue") for k, v in params.items()}
    # XG's analysis: top-100 candidates, 20 greedy tokens, offsets 0..-5, mGPT.
    assert defaults["base_model"] == "ai-forever/mGPT"
    assert defaults["value_vector_config"]["top_k"] == 100
    assert defaults["value_vector_config"]["steps"] == 20
    assert defaults["intervention_config"]["offsets"] == [0.0, -1.0, -2.0, -3.0, -4.0, -5.0]
    # scripts/run_train_probe.py: Adam at 1e-6, seed 99; max_length null (the tokenizer's
    # limit) is absent from the Struct and comes back as the default, None.
    assert defaults["probe_config"] == {
        "label": "toxic", "threshold": 0.5, "epochs": 20, "batch_size": 10,
        "learning_rate": 1e-6, "validation_fraction": 0.1, "seed": 99, "embed_batch_size": 10,
    }  # fmt: skip
    for section in ("value_vector_config", "activation_config"):
        assert defaults[section]["prepend_bos"] is True
        assert defaults[section]["stop_at_eos"] is False
    assert defaults["tuned_model"].startswith("gs://")
    assert defaults["metrics_csv"].endswith("metrics.csv")
    # A --set changes the compiled default.
    spec = _compile(tmp_path, XG, ["interpret.value_vectors.top_k=7"])
    value_vectors = spec["root"]["inputDefinitions"]["parameters"]["value_vector_config"]
    assert value_vectors["defaultValue"]["top_k"] == 7


def test_tuned_model_adds_a_second_model_to_the_activations(xg_spec):
    dag = xg_spec["root"]["dag"]["tasks"]
    # The XG recipe's tuned model is on GCS: imported where it lies, not copied.
    assert dag["importer"]["inputs"]["parameters"]["uri"] == {
        "componentInputParameter": "tuned_model"
    }
    call = dag["interpret"]["inputs"]
    assert call["artifacts"]["tuned_model"]["taskOutputArtifact"]["producerTask"] == "importer"
    assert call["parameters"]["tuned_label"]["runtimeValue"]["constant"] == "dpo"
    act = _graph(xg_spec)["tasks"]["measure-activations"]["inputs"]
    assert act["artifacts"]["tuned_model"]["componentInputArtifact"] == "tuned_model"
    assert act["parameters"]["base_label"]["runtimeValue"]["constant"] == "base"


def test_model_stages_get_the_cluster_gpus(tmp_path):
    overrides = [
        f"cluster.resources.{stage}.gpu=1" for stage in ("probe", "value_vectors", "intervene")
    ] + ["cluster.resources.probe.gpu_type=nvidia-l4"]
    spec = _compile(tmp_path, TOY, overrides)
    executors = spec["deploymentSpec"]["executors"]

    def resources(task: str, dag: dict | None = None) -> dict:
        label = _component(spec, task, dag)["executorLabel"]
        return executors[label]["container"].get("resources", {})

    assert resources("train-probe")["accelerator"]["resourceCount"] == "1"
    assert resources("find-value-vectors")["accelerator"]["resourceType"] == "nvidia.com/gpu"
    assert resources("intervene", _sweep(spec))["accelerator"]["resourceCount"] == "1"
    assert "accelerator" not in resources("interpret-report")
    selectors = spec["_platform"]["platforms"]["kubernetes"]["deploymentSpec"]["executors"]
    probe_label = _component(spec, "train-probe")["executorLabel"]
    assert selectors[probe_label]["nodeSelector"]["labels"] == {
        "cloud.google.com/gke-accelerator": "nvidia-l4"
    }


def test_model_stages_use_the_training_image(toy_spec):
    executors = toy_spec["deploymentSpec"]["executors"]

    def image(task: str) -> str:
        return executors[_component(toy_spec, task)["executorLabel"]]["container"]["image"]

    assert "xdetox-train:" in image("train-probe")
    assert "xdetox-train:" in image("measure-alignment")
    assert "xdetox-train:" not in image("interpret-report")


def test_value_vector_language_must_be_in_the_pipeline(tmp_path):
    config = load_config(TOY, ["data.languages=[de, fr]"])
    with pytest.raises(ConfigError, match=r"interpret\.value_vectors\.language: 'en'"):
        build_interpret_pipeline(config)


def test_registry_knows_the_interpret_pipeline(toy_spec):
    assert PIPELINES["interpret"] is build_interpret_pipeline
    assert PARAMETER_SECTIONS["interpret"] is INTERPRET_PARAMETER_SECTIONS
    struct_params = {
        name
        for name, p in toy_spec["root"]["inputDefinitions"]["parameters"].items()
        if p["parameterType"] == "STRUCT" and name != "run_info"
    }
    assert struct_params == set(INTERPRET_PARAMETER_SECTIONS)


# --- toy inputs -------------------------------------------------------------------------------


def test_toy_interpret_data_is_in_sync_with_its_generator():
    result = subprocess.run(
        [sys.executable, str(REPO / "tools" / "make_toy_interpret_data.py"), "--check"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_toy_probe_data_is_jigsaw_format():
    data = read_labelled_csv(toy_jigsaw_path(), "toxic")
    assert data.format == "jigsaw"
    assert len(data.examples) == 600
    assert sum(e.label for e in data.examples) == 240
    # Every sub-label implies toxic here, so "any" gives the same labels.
    assert [e.label for e in read_labelled_csv(toy_jigsaw_path(), "any").examples] == [
        e.label for e in data.examples
    ]
    assert len({e.text for e in data.examples}) == 600


def test_toy_parallel_sentences_are_translations_of_the_same_english():
    pairs = read_parallel(toy_parallel_path())
    assert list(pairs) == ["de", "es", "fr", "ru", "zh-hans"]
    english = [p.en for p in pairs["de"]]
    assert len(english) == 60 and len(set(english)) == 60
    for group in pairs.values():
        assert [p.en for p in group] == english
        assert len({p.text for p in group}) == 60  # distinct: retrieval is well defined
    # Same template indices: an English threat stays a threat ("stab" ↔ "abstechen" ↔ "捅死").
    by_en = {p.en: p.text for p in pairs["de"]}
    stab = [en for en in english if "stab you" in en]
    assert stab and all("abstechen" in by_en[en] for en in stab)
    zh = {p.en: p.text for p in pairs["zh-hans"]}
    assert all("捅死" in zh[en] for en in stab)


# --- joining per-language sweeps ---------------------------------------------------------------


def _part(folder: Path, language: str, values: dict[float, float | None], **overrides) -> Path:
    offsets = list(values)
    rows = []
    for offset, value in values.items():
        n = 0 if value is None else 4
        row = {"offset": offset, "language": language, "avg_toxicity": value, "n": n,
               "n_missing": 4 - n}  # fmt: skip
        rows += [row, {**row, "language": "ALL"}]
    records = [{"prompt_id": f"{language}-1", "language": language, "text": "x", "offset": o,
                "scores": {"TOXICITY": v}} for o, v in values.items()]  # fmt: skip
    args = {"languages": [language], "offsets": offsets, "n_neurons": 3, "model_type": "gpt2",
            "generation": {"n": 4},
            "config": {"attribute": "TOXICITY", "languages": [language]}}  # fmt: skip
    args.update(overrides)
    write_intervention(folder, rows, records, **args)
    return folder


def test_joined_sweeps_recompute_the_mean_over_languages(tmp_path):
    de = _part(tmp_path / "de", "de", {0.0: 0.4, -5.0: 0.1})
    en = _part(tmp_path / "en", "en", {0.0: 0.2, -5.0: None})  # English unscored at -5
    summary = merge_interventions([de, en], tmp_path / "all")
    table = pd.read_csv(
        tmp_path / "all" / "intervention.csv", keep_default_na=False, na_values=[""]
    )
    assert list(table["language"]) == ["de", "en", "ALL", "de", "en", "ALL"]
    all_rows = table[table["language"] == "ALL"].set_index("offset")
    assert all_rows.loc[0.0, "avg_toxicity"] == pytest.approx(0.3)
    # The mean over the languages that have a value; the missing one is not a 0.
    assert all_rows.loc[-5.0, "avg_toxicity"] == pytest.approx(0.1)
    en_at_minus_5 = table[(table["language"] == "en") & (table["offset"] == -5.0)]
    assert math.isnan(en_at_minus_5["avg_toxicity"].item())  # an empty cell, not 0
    assert summary["mean_over_languages"] == {"0": pytest.approx(0.3), "-5": pytest.approx(0.1)}
    assert summary["languages"] == ["de", "en"] and summary["n_missing"] == 4
    generations = (tmp_path / "all" / "intervention_generations.jsonl").read_text().splitlines()
    assert len(generations) == 4
    assert (tmp_path / "all" / "intervention.png").read_bytes()[:4] == b"\x89PNG"


def test_parts_of_different_sweeps_are_refused(tmp_path):
    de = _part(tmp_path / "de", "de", {0.0: 0.4, -5.0: 0.1})
    other = _part(tmp_path / "fr", "fr", {0.0: 0.4, -2.0: 0.1})
    twin = _part(tmp_path / "de2", "de", {0.0: 0.4, -5.0: 0.1})
    out = tmp_path / "all"
    with pytest.raises(DataError, match=r"fr/intervention_summary\.json: 'offsets' differs"):
        merge_interventions([de, other], out)
    with pytest.raises(DataError, match=r"de2/intervention_summary\.json: language 'de' also in"):
        merge_interventions([de, twin], out)
    (tmp_path / "de" / "intervention.csv").write_text("offset,language\n0,de\n")
    with pytest.raises(DataError, match=r"de/intervention\.csv:1: missing column"):
        merge_interventions([tmp_path / "de"], out)
    assert not out.exists()


def test_logged_values_leave_missing_ones_out():
    summary = {"a": 0.5, "b": None, "c": math.nan, "d": True, "e": 3}
    assert numeric(summary, "abcde") == {"a": 0.5, "e": 3.0}
    probe = {"roc_curve": {"fpr": [0, 1], "tpr": [0, 1], "thresholds": [2, 0]},
             "validation_confusion_matrix": {"tn": 5, "fp": 1, "fn": 2, "tp": 4}}  # fmt: skip
    assert probe_roc(probe) == ([0, 1], [0, 1], [2, 0])
    assert probe_confusion(probe) == [[5, 1], [2, 4]]
    assert probe_roc({"roc_curve": None}) is None and probe_confusion({}) is None


# --- one real local run -----------------------------------------------------------------------


def _shifted_copy(src: Path, dest: Path) -> Path:
    """The toy model with every MLP input bias lowered by 0.5: a second model whose neuron
    activations differ from the base's, standing in for a tuned model."""
    from safetensors.torch import load_file, save_file

    shutil.copytree(src, dest)
    weights = load_file(str(dest / "model.safetensors"))
    changed = 0
    for name, tensor in weights.items():
        if name.endswith("mlp.c_fc.bias"):
            weights[name] = (tensor - 0.5).contiguous()
            changed += 1
    assert changed == 2
    save_file(weights, str(dest / "model.safetensors"), {"format": "pt"})
    return dest


LANGUAGES = ["en", "de", "zh-hans"]


@pytest.fixture(scope="module")
def local_run(tmp_path_factory) -> Path:
    from xdetox.toy import ensure_toy_model

    root = tmp_path_factory.mktemp("interpret-run")
    shifted = _shifted_copy(Path(ensure_toy_model()), root / "shifted")
    metrics = root / "metrics.csv"
    tuned = {"en": 0.1, "de": 0.3, "es": 0.2, "fr": 0.35, "ru": 0.4, "zh-hans": 0.45}
    rows = [("base", lang, 0.5) for lang in tuned] + [("shifted", k, v) for k, v in tuned.items()]
    pd.DataFrame(rows, columns=["model", "language", "expected_max_toxicity"]).to_csv(
        metrics, index=False
    )
    run_dir = root / "run"
    overrides = [
        f"data.languages={json.dumps(LANGUAGES)}",
        "data.max_prompts_per_language=4",
        "generation.n=3",
        f"interpret.tuned_model={shifted}",
        "interpret.tuned_label=shifted",
        f"interpret.metrics={metrics}",
        "interpret.intervention.offsets=[0, -2.5, -5]",
        "interpret.value_vectors.steps=10",
        "interpret.activations.steps=10",
        "interpret.alignment.max_pairs_per_language=20",
        "interpret.alignment.tuned_label=shifted",
    ]
    command = [
        str(Path(sys.executable).parent / "xdetox"),
        "interpret-run",
        "--output",
        str(run_dir),
    ]
    for item in overrides:
        command += ["--set", item]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    result = subprocess.run(command, capture_output=True, text=True, timeout=600, env=env)
    assert result.returncode == 0, result.stderr[-4000:]
    assert f"report:  {run_dir / 'report.html'}" in result.stdout
    return run_dir


def _executor_artifacts(run_dir: Path, task: str) -> dict:
    found = list((run_dir / "kfp").rglob(f"{task}/executor_output.json"))
    assert len(found) == 1, found
    data = json.loads(found[0].read_text())
    return {name: entry["artifacts"][0] for name, entry in data["artifacts"].items()}


@pytest.mark.e2e
def test_run_folder_holds_every_stage(local_run: Path):
    for name in ("report.html", "report.md"):
        assert (local_run / name).is_file()
    for folder, file in [("probe", "probe.safetensors"), ("value_vectors", "value_vectors.csv"),
                         ("intervention", "intervention.csv"), ("activations", "activations.csv"),
                         ("alignment", "alignment.csv")]:  # fmt: skip
        assert (local_run / folder / file).is_file(), folder
    for model in ("base", "tuned"):
        assert (local_run / "models" / model / "config.json").is_file()


@pytest.mark.e2e
def test_probe_separates_the_toy_data(local_run: Path):
    summary = json.loads((local_run / "probe" / "probe_summary.json").read_text())
    # 60 validation comments, 40% toxic: always guessing "non-toxic" scores 0.6.
    assert summary["n_validation"] == 60
    assert summary["validation_accuracy"] >= 0.85
    assert summary["validation_roc_auc"] >= 0.9
    roc = _executor_artifacts(local_run, "train-probe")["roc"]["metadata"]
    assert roc["confidenceMetrics"][0] == {
        "confidenceThreshold": pytest.approx(summary["roc_curve"]["thresholds"][0]),
        "recall": 0.0,
        "falsePositiveRate": 0.0,
    }
    matrix = [r["row"] for r in roc["confusionMatrix"]["rows"]]
    assert sum(map(sum, matrix)) == 60
    assert (matrix[0][0] + matrix[1][1]) / 60 == pytest.approx(summary["validation_accuracy"])
    metrics = _executor_artifacts(local_run, "train-probe")["metrics"]["metadata"]
    assert metrics["validation_accuracy"] == pytest.approx(summary["validation_accuracy"])


@pytest.mark.e2e
def test_value_vector_table_lists_kept_neurons(local_run: Path):
    table = pd.read_csv(local_run / "value_vectors" / "value_vectors.csv")
    assert len(table) == 20  # top_k of the toy recipe
    assert table["kept"].any()
    assert (table[table["kept"]]["mean_activation"] > 0).all()
    assert list(table["cosine"]) == sorted(table["cosine"], reverse=True)
    artifacts = _executor_artifacts(local_run, "find-value-vectors")
    assert (
        Path(artifacts["table"]["uri"]).read_text()
        == (local_run / "value_vectors" / "value_vectors.csv").read_text()
    )
    assert artifacts["table"]["metadata"]["n_kept"] == int(table["kept"].sum())


@pytest.mark.e2e
def test_shifting_the_toxic_neurons_down_does_not_raise_english_toxicity(local_run: Path):
    table = pd.read_csv(local_run / "intervention" / "intervention.csv")
    assert set(table["language"]) == {*LANGUAGES, "ALL"}
    en = table[table["language"] == "en"].set_index("offset")["avg_toxicity"]
    assert en.loc[0.0] > 0  # the toy base model is measurably toxic in English
    assert en.loc[-5.0] <= en.loc[0.0]
    for offset, group in table.groupby("offset"):
        per_language = group[group["language"] != "ALL"]["avg_toxicity"]
        assert group[group["language"] == "ALL"]["avg_toxicity"].item() == pytest.approx(
            per_language.mean()
        ), offset
    # 4 prompts × 3 samples per language, all scored (the lexicon covers en, de, zh-hans).
    assert ((table["n"] == 4 * 3) | (table["language"] == "ALL")).all()


@pytest.mark.e2e
def test_activations_compare_the_two_models(local_run: Path):
    table = pd.read_csv(local_run / "activations" / "activations.csv")
    assert set(table["model"]) == {"base", "shifted"}
    means = table[table["language"] == "ALL"].set_index("model")["mean_activation"]
    assert means.notna().all() and means["base"] != pytest.approx(means["shifted"])


@pytest.mark.e2e
def test_alignment_is_correlated_with_the_given_drop(local_run: Path):
    table = pd.read_csv(local_run / "alignment" / "alignment.csv")
    assert set(table["language"]) == {"de", "es", "fr", "ru", "zh-hans"}
    assert set(table["layer"]) == {0, 1, 2}  # embeddings + 2 blocks of the toy model
    assert (table["n_pairs"] == 20).all()
    drop = pd.read_csv(local_run / "alignment" / "alignment_vs_drop.csv").set_index("language")
    assert drop.loc["de", "drop"] == pytest.approx(0.2)
    assert drop.loc["zh-hans", "drop"] == pytest.approx(0.05)
    summary = json.loads((local_run / "alignment" / "alignment_summary.json").read_text())
    correlation = summary["correlation"]
    assert correlation["n_languages"] == 5 and correlation["tuned"] == "shifted"
    # Pearson's r recomputed from the table: alignment averaged over layers vs the drop.
    mean_cosine = table.groupby("language")["mean_cosine"].mean()
    expected = np.corrcoef(mean_cosine.loc[drop.index], drop["drop"])[0, 1]
    assert correlation["pearson_mean_cosine"] == pytest.approx(expected)


@pytest.mark.e2e
def test_report_shows_every_plot(local_run: Path):
    html = (local_run / "report.html").read_text()
    for plot in ("roc_curve", "intervention", "activations", "alignment"):
        assert f"<img alt='{plot}' src='data:image/png;base64," in html, plot
    for title in ("Toxicity probe", "Toxic value vectors", "Intervention on the toxic neurons",
                  "Toxic neurons before and after tuning", "Cross-lingual alignment"):  # fmt: skip
        assert f"<h2>{title}</h2>" in html
    markdown = (local_run / "report.md").read_text()
    assert "## Cross-lingual alignment" in markdown and "| validation_accuracy |" in markdown
