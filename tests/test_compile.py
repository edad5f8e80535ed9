"""The compiled IR: what a cluster receives. Checked statically, no cluster needed."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from xdetox.config import load_config
from xdetox.pipelines.compile import compile_pipeline

CONFIGS = Path(__file__).resolve().parent.parent / "pipelines" / "configs"
GKE = [CONFIGS / "xg-mgpt.yaml", CONFIGS / "cluster" / "gke-a100.yaml"]


def _compile(tmp_path: Path, paths=None, overrides=None) -> dict:
    out = compile_pipeline(load_config(paths, overrides), tmp_path / "detox.yaml")
    docs = list(yaml.safe_load_all(out.read_text()))
    spec = docs[0]
    spec["_platform"] = docs[1] if len(docs) > 1 else {}
    return spec


def _executor_for(spec: dict, task_name: str, dag: dict | None = None) -> str:
    dag = dag or spec["root"]["dag"]
    return spec["components"][dag["tasks"][task_name]["componentRef"]["name"]]["executorLabel"]


@pytest.fixture(scope="module")
def gke_spec(tmp_path_factory) -> dict:
    return _compile(tmp_path_factory.mktemp("gke"), GKE)


@pytest.fixture(scope="module")
def toy_spec(tmp_path_factory) -> dict:
    return _compile(tmp_path_factory.mktemp("toy"))


def test_pipeline_has_every_stage(toy_spec):
    root_tasks = set(toy_spec["root"]["dag"]["tasks"])
    assert {
        "load-model",
        "prepare-data",
        "prepare-prompts",
        "train",
        "merge",
        "report",
    } <= root_tasks
    loop = toy_spec["components"]["comp-for-loop-1"]["dag"]["tasks"]
    assert set(loop) == {"generate", "generate-2", "score", "score-2", "language-metrics"}
    # base and tuned generate in the same iteration, so the comparison is paired
    labels = {
        loop[t]["inputs"]["parameters"]["model_label"]["runtimeValue"]["constant"]
        for t in ("generate", "generate-2")
    }
    assert labels == {"base", "dpo"}


def test_parallel_for_iterates_over_languages(gke_spec):
    loop_task = gke_spec["root"]["dag"]["tasks"]["for-loop-1"]
    iterator = loop_task["parameterIterator"]
    assert iterator["items"]["inputParameter"] == "pipelinechannel--languages"
    assert loop_task["iteratorPolicy"]["parallelismLimit"] == 8  # from the cluster file
    assert (
        len(gke_spec["root"]["inputDefinitions"]["parameters"]["languages"]["defaultValue"]) == 17
    )


def test_report_collects_every_language(toy_spec):
    report = toy_spec["root"]["dag"]["tasks"]["report"]
    tables = report["inputs"]["artifacts"]["tables"]["taskOutputArtifact"]
    assert tables["producerTask"] == "for-loop-1"


def test_artifacts_are_typed(toy_spec):
    def outputs(component: str) -> dict[str, str]:
        arts = toy_spec["components"][component]["outputDefinitions"]["artifacts"]
        return {name: a["artifactType"]["schemaTitle"] for name, a in arts.items()}

    assert outputs("comp-load-model") == {"model": "system.Model"}
    assert outputs("comp-train") == {
        "tuned": "system.Model",
        "metrics": "system.Metrics",
        "curves": "system.HTML",
    }
    assert outputs("comp-merge") == {"merged": "system.Model"}
    assert outputs("comp-generate") == {"generations": "system.Dataset"}
    assert outputs("comp-score") == {"scores": "system.Dataset"}
    assert outputs("comp-language-metrics") == {
        "table": "system.Dataset",
        "metrics": "system.Metrics",
    }
    assert outputs("comp-report") == {
        "metrics_csv": "system.Dataset",
        "html": "system.HTML",
        "markdown": "system.Markdown",
        "summary": "system.Metrics",
    }
    tables = toy_spec["components"]["comp-report"]["inputDefinitions"]["artifacts"]["tables"]
    assert tables["isArtifactList"] is True


def _resources(spec: dict, executor: str) -> dict:
    return spec["deploymentSpec"]["executors"][executor]["container"].get("resources", {})


def test_gpu_stages_request_gpus_and_land_on_gpu_nodes(gke_spec):
    k8s = gke_spec["_platform"]["platforms"]["kubernetes"]["deploymentSpec"]["executors"]
    for executor in ("exec-train", "exec-generate", "exec-generate-2"):
        accel = _resources(gke_spec, executor)["accelerator"]
        assert accel["resourceType"] == "nvidia.com/gpu" and int(accel["resourceCount"]) == 1
        assert k8s[executor]["nodeSelector"]["labels"] == {
            "cloud.google.com/gke-accelerator": "nvidia-tesla-a100"
        }
        assert {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"} in k8s[
            executor
        ]["tolerations"]
    assert "accelerator" not in _resources(gke_spec, "exec-score")
    assert "exec-score" not in k8s or "nodeSelector" not in k8s["exec-score"]
    dpo = k8s["exec-train"]
    assert dpo["emptyDirMounts"][0]["mountPath"] == "/dev/shm"
    assert dpo["emptyDirMounts"][0]["medium"] == "Memory"
    assert int(dpo["activeDeadlineSeconds"]) == 86400
    assert _resources(gke_spec, "exec-train")["memoryLimit"] > 80


def test_toy_compile_asks_for_no_gpu(toy_spec):
    for name, executor in toy_spec["deploymentSpec"]["executors"].items():
        assert "accelerator" not in executor["container"].get("resources", {}), name
    assert not toy_spec["_platform"]


def test_components_use_project_images_without_installing_kfp(toy_spec):
    from xdetox.components.images import BASE_IMAGE, GENERATE_IMAGE, TRAIN_IMAGE

    images = {
        name: e["container"]["image"] for name, e in toy_spec["deploymentSpec"]["executors"].items()
    }
    assert images["exec-train"] == TRAIN_IMAGE and images["exec-generate"] == GENERATE_IMAGE
    assert images["exec-score"] == BASE_IMAGE
    for executor in toy_spec["deploymentSpec"]["executors"].values():
        command = " ".join(executor["container"]["command"])
        assert "pip install" not in command  # the image supplies kfp and the code


def test_retries_and_caching_follow_the_config(gke_spec, tmp_path):
    loop = gke_spec["components"]["comp-for-loop-1"]["dag"]["tasks"]
    assert loop["generate"]["retryPolicy"]["maxRetryCount"] == 2
    # the offline scorer is deterministic: its results may be reused
    assert loop["score"]["cachingOptions"]["enableCache"] is True
    assert loop["generate"]["cachingOptions"]["enableCache"] is True
    # an external service answers differently over time: never cached
    spec = _compile(tmp_path, None, ["scoring.scorer=perspective"])
    loop = spec["components"]["comp-for-loop-1"]["dag"]["tasks"]
    assert loop["score"]["cachingOptions"].get("enableCache") is not True
    assert loop["generate"]["cachingOptions"]["enableCache"] is True


def test_secrets_are_referenced_by_name_never_by_value(tmp_path, monkeypatch):
    monkeypatch.setenv("PERSPECTIVE_API_KEY", "sk-live-do-not-leak-123")
    monkeypatch.setenv("HF_TOKEN", "hf_do_not_leak_456")
    out = compile_pipeline(load_config(GKE), tmp_path / "detox.yaml")
    text = out.read_text()
    assert "sk-live-do-not-leak-123" not in text and "hf_do_not_leak_456" not in text
    k8s = list(yaml.safe_load_all(text))[1]["platforms"]["kubernetes"]["deploymentSpec"]
    score = k8s["executors"]["exec-score"]["secretAsEnv"][0]
    assert score["secretName"] == "perspective-api-key"
    assert score["keyToEnv"] == [
        {"envVar": "PERSPECTIVE_API_KEY", "secretKey": "PERSPECTIVE_API_KEY"}
    ]
    assert k8s["executors"]["exec-load-model"]["secretAsEnv"][0]["secretName"] == "hf-token"
    assert "secretAsEnv" not in k8s["executors"].get("exec-report", {})


def test_pipeline_root_from_cluster_config(gke_spec):
    assert gke_spec["defaultPipelineRoot"] == "gs://YOUR_BUCKET/xdetox/pipeline-root"


def test_config_values_become_parameter_defaults(tmp_path):
    spec = _compile(tmp_path, None, ["training.beta=0.25", "data.languages=[en, de]"])
    params = spec["root"]["inputDefinitions"]["parameters"]
    assert params["training"]["defaultValue"]["beta"] == 0.25
    assert params["languages"]["defaultValue"] == ["en", "de"]
    assert params["base_model"]["defaultValue"] == "toy"


def test_compile_leaves_no_partial_file_on_error(tmp_path, monkeypatch):
    import kfp.compiler

    def boom(*args, **kwargs):
        raise RuntimeError("compiler failed")

    monkeypatch.setattr(kfp.compiler.Compiler, "compile", boom)
    with pytest.raises(RuntimeError):
        compile_pipeline(load_config(), tmp_path / "out.yaml")
    assert list(tmp_path.iterdir()) == []


def test_optional_interpret_branch_uses_the_runs_own_models_and_metrics(tmp_path):
    plain = _compile(tmp_path / "plain", None)
    assert "train-probe" not in plain["root"]["dag"]["tasks"]
    spec = _compile(tmp_path / "branch", None, ["interpret.run_in_detox=true"])
    root = spec["root"]["dag"]["tasks"]
    assert {
        "train-probe",
        "find-value-vectors",
        "measure-activations",
        "measure-alignment",
        "interpret-report",
    } <= set(root)
    acts = root["measure-activations"]["inputs"]["artifacts"]
    assert acts["tuned_model"]["taskOutputArtifact"]["producerTask"] == "merge"
    assert acts["base_model"]["taskOutputArtifact"]["producerTask"] == "load-model"
    align = root["measure-alignment"]["inputs"]["artifacts"]["metrics_table"]
    assert align["taskOutputArtifact"]["producerTask"] == "report"
    loops = [c for c in spec["components"] if c.startswith("comp-for-loop")]
    assert len(loops) == 2  # the language loop of the detox pipeline and the sweep's


def test_agreement_option_scores_twice_and_compares(tmp_path):
    spec = _compile(tmp_path, None, ["scoring.agreement_with=perspective"])
    loop = spec["components"]["comp-for-loop-1"]["dag"]["tasks"]
    assert {"score", "score-2", "score-3", "score-4"} <= set(loop)
    second = {t: loop[t]["inputs"]["parameters"]["scoring"] for t in loop if t.startswith("score")}
    scorers = {
        p["runtimeValue"]["constant"]["scorer"] for p in second.values() if "runtimeValue" in p
    }
    assert scorers == {"perspective"}  # the second scorer's params are compiled in
    root = spec["root"]["dag"]["tasks"]
    assert {"scorer-agreement", "scorer-agreement-2"} <= set(root)
    # a scorer that calls an external service is never cached
    assert not loop["score"]["cachingOptions"].get("enableCache")


def test_online_rl_methods_train_from_prompts_without_pairs(tmp_path):
    spec = _compile(tmp_path, None, ["training.method=ppo"])
    root = spec["root"]["dag"]["tasks"]
    assert "prepare-data" not in root
    assert "pairs" not in root["train"]["inputs"].get("artifacts", {})
    assert root["train"]["inputs"]["parameters"]["rl"]["componentInputParameter"] == "rl"
    loop = spec["components"]["comp-for-loop-1"]["dag"]["tasks"]
    labels = {
        loop[t]["inputs"]["parameters"]["model_label"]["runtimeValue"]["constant"]
        for t in ("generate", "generate-2")
    }
    assert labels == {"base", "ppo"}
