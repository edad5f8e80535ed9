"""The local run folder is laid out from the artifacts' metadata, not from KFP task names.

KFP's local runner names task folders after generated task names (``load-model-2``,
``for-loop-1-iteration-0/score-3``) that change whenever the graph does; the run folder must
not. These tests write task folders as kfp.local does (``executor_output.json`` beside each
output) under arbitrary names and check where each artifact lands.
"""

from __future__ import annotations

import json
from pathlib import Path

from xdetox.cli.main import main
from xdetox.config import load_config
from xdetox.pipelines.local_run import Layout, layout_for, organise_run_folder


def _task(kfp_root: Path, folder: str, outputs: dict[str, tuple[dict, bool]]) -> None:
    """One task folder: each output (metadata, is a folder) written as kfp.local writes it."""
    task = kfp_root / "pipeline-run" / folder
    artifacts = {}
    for name, (metadata, is_dir) in outputs.items():
        uri = task / name
        if is_dir:
            uri.mkdir(parents=True)
            (uri / "config.json").write_text("{}")
        else:
            uri.parent.mkdir(parents=True, exist_ok=True)
            uri.write_text(name)
        artifacts[name] = {"artifacts": [{"name": name, "uri": str(uri), "metadata": metadata}]}
    (task / "executor_output.json").write_text(json.dumps({"artifacts": artifacts}))


def test_detox_run_folder_from_metadata(tmp_path: Path):
    kfp_root = tmp_path / "run" / "kfp"
    model = {"xdetox_kind": "model", "source": "toy"}
    _task(kfp_root, "some-loader-9", {"model": (model, True)})
    _task(kfp_root, "t1", {"tuned": ({"xdetox_kind": "trained", "method": "dpo",
                                      "mode": "lora"}, True)})  # fmt: skip
    _task(kfp_root, "pp", {"pairs": ({"xdetox_kind": "pairs", "source": "self"}, True)})
    _task(kfp_root, "t2", {"merged": ({"xdetox_kind": "model", "model": "dpo"}, True)})
    for i, language in enumerate(("en", "de")):
        gen = {"xdetox_kind": "generations", "model": "base", "language": language}
        _task(kfp_root, f"loop-{i}/gen-x", {"generations": (gen, False)})
        scores = {**gen, "xdetox_kind": "scores", "scorer": "offline-lexicon-v1"}
        _task(kfp_root, f"loop-{i}/sc-a", {"scores": (scores, False)})
        second = {**scores, "scorer": "perspective-v1"}
        _task(kfp_root, f"loop-{i}/sc-b", {"scores": (second, False)})
        examples = {"xdetox_kind": "examples", "language": language, "format": "json"}
        _task(kfp_root, f"loop-{i}/ex", {"examples": (examples, False)})
    _task(kfp_root, "r", {
        "metrics_csv": ({"xdetox_kind": "metrics_all"}, False),
        "html": ({"xdetox_kind": "report", "format": "html"}, False),
        "markdown": ({"xdetox_kind": "report", "format": "markdown"}, False),
    })  # fmt: skip
    _task(kfp_root, "p", {"probe": ({"xdetox_kind": "probe"}, True)})
    _task(kfp_root, "i-0", {"results": ({"xdetox_kind": "intervention_language"}, True)})
    _task(kfp_root, "c", {"results": ({"xdetox_kind": "intervention"}, True)})
    _task(kfp_root, "ir", {"html": ({"xdetox_kind": "interpret_report", "format": "html"}, False)})
    run_dir = tmp_path / "run"
    files = organise_run_folder(run_dir, kfp_root, layout_for(load_config(), "detox"))
    assert set(files) == {
        "models/base", "models/dpo-adapter", "models/dpo", "pairs",
        "generations/base_en.jsonl", "generations/base_de.jsonl",
        "scores/base_en.jsonl", "scores/base_de.jsonl",
        "scores/base_en.perspective.jsonl", "scores/base_de.perspective.jsonl",
        "examples/en.json", "examples/de.json",
        "metrics.csv", "report.html", "report.md",
        "interpret/probe", "interpret/intervention", "interpret/report.html",
    }  # fmt: skip
    assert (run_dir / "models" / "base").is_symlink()
    assert (run_dir / "models" / "base" / "config.json").is_file()
    assert (run_dir / "report.md").read_text() == "markdown"


def test_interpret_and_eval_layouts(tmp_path: Path):
    config = load_config(None, ["interpret.tuned_model=/models/tuned"])
    layout = layout_for(config, "interpret")
    assert layout == Layout({"toy": "base", "/models/tuned": "tuned"}, "offline", "")
    kfp_root = tmp_path / "run" / "kfp"
    _task(kfp_root, "a", {"model": ({"xdetox_kind": "model", "source": "/models/tuned"}, True)})
    _task(kfp_root, "b", {"html": ({"xdetox_kind": "interpret_report", "format": "html"}, False)})
    files = organise_run_folder(tmp_path / "run", kfp_root, layout)
    assert set(files) == {"models/tuned", "report.html"}
    assert layout_for(load_config(), "eval").model_labels == {"toy": "candidate"}


def test_bad_cluster_file_fails_before_the_run_folder_exists(tmp_path: Path, capsys):
    run_dir = tmp_path / "run"
    code = main(["run", "--set", "cluster.resources.metrics.gpu=0",
                 "--set", "cluster.resources.report.gpu=1", "--output", str(run_dir)])  # fmt: skip
    assert code == 2
    assert "cluster.resources.report.gpu: stage 'report'" in capsys.readouterr().err
    assert not run_dir.exists()
