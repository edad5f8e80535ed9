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


def _per_language(spec: dict) -> dict:
    """The tasks of the evaluate-language sub-pipeline (one ParallelFor iteration)."""
    loop = spec["components"]["comp-for-loop-1"]["dag"]["tasks"]
    assert set(loop) == {"evaluate-language"}
    return spec["components"]["comp-evaluate-language"]["dag"]["tasks"]


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
    loop = _per_language(toy_spec)
    assert set(loop) == {
        "generate", "generate-2", "score", "score-2", "gather-scores", "language-metrics",
        "language-examples",
    }  # fmt: skip
    # base and tuned generate in the same iteration, so the comparison is paired
    labels = {
        loop[t]["inputs"]["parameters"]["model_label"]["componentInputParameter"]
        for t in ("generate", "generate-2")
    }
    assert labels == {"base_label", "dpo_label"}
    call = toy_spec["components"]["comp-for-loop-1"]["dag"]["tasks"]["evaluate-language"]
    constants = {
        name: call["inputs"]["parameters"][name]["runtimeValue"]["constant"]
        for name in ("base_label", "dpo_label")
    }
    assert constants == {"base_label": "base", "dpo_label": "dpo"}
    # the metrics and examples read both models' scores, gathered in order
    gathered = loop["gather-scores"]["inputs"]["artifacts"]
    assert gathered["earlier"]["taskOutputArtifact"]["producerTask"] == "score"
    assert gathered["scores"]["taskOutputArtifact"]["producerTask"] == "score-2"
    for task in ("language-metrics", "language-examples"):
        source = loop[task]["inputs"]["artifacts"]["scores"]["taskOutputArtifact"]
        assert source == {"outputArtifactKey": "gathered", "producerTask": "gather-scores"}


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
        "snapshots": "system.Artifact",  # training.dose_response (an index only when off)
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
    loop = _per_language(gke_spec)
    assert loop["generate"]["retryPolicy"]["maxRetryCount"] == 2
    # XG scored with Perspective: an external service answers differently over time, so its
    # scores are never cached; generation (seeded) is
    assert loop["score"]["cachingOptions"].get("enableCache") is not True
    assert loop["generate"]["cachingOptions"]["enableCache"] is True
    # an offline scorer is deterministic: its results may be reused
    spec = _compile(tmp_path, None, ["scoring.scorer=offline"])
    loop = _per_language(spec)
    assert loop["score"]["cachingOptions"]["enableCache"] is True
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
    assert "interpret" not in plain["root"]["dag"]["tasks"]
    assert "comp-interpret" not in plain["components"]
    spec = _compile(tmp_path / "branch", None, ["interpret.run_in_detox=true"])
    # The same sub-pipeline as the interpret pipeline's (pipelines/interpret_graph.py).
    graph = spec["components"]["comp-interpret"]["dag"]["tasks"]
    assert {
        "train-probe",
        "find-value-vectors",
        "for-loop-1",
        "combine-interventions",
        "measure-activations",
        "measure-alignment",
        "interpret-report",
    } == set(graph)
    call = spec["root"]["dag"]["tasks"]["interpret"]["inputs"]["artifacts"]
    producers = {k: v["taskOutputArtifact"]["producerTask"] for k, v in call.items()}
    assert producers == {"base_model": "load-model", "tuned_model": "merge",
                         "prompts": "prepare-prompts", "metrics_table": "report"}  # fmt: skip
    acts = graph["measure-activations"]["inputs"]["artifacts"]
    assert acts["tuned_model"]["componentInputArtifact"] == "tuned_model"
    align = graph["measure-alignment"]["inputs"]["artifacts"]["metrics_table"]
    assert align["componentInputArtifact"] == "metrics_table"
    loops = [c for c in spec["components"] if c.startswith("comp-for-loop")]
    assert len(loops) == 2  # the language loop of the detox pipeline and the sweep's


def test_agreement_option_scores_twice_and_compares(tmp_path):
    spec = _compile(tmp_path, None, ["scoring.agreement_with=perspective"])
    loop = _per_language(spec)
    assert {"score", "score-2", "score-3", "score-4"} <= set(loop)
    second = {t: loop[t]["inputs"]["parameters"]["scoring"] for t in loop if t.startswith("score")}
    scorers = {
        p["runtimeValue"]["constant"]["scorer"] for p in second.values() if "runtimeValue" in p
    }
    assert scorers == {"perspective"}  # the second scorer's params are compiled in
    root = spec["root"]["dag"]["tasks"]
    assert {"scorer-agreement", "scorer-agreement-2"} <= set(root)
    collected = root["scorer-agreement"]["inputs"]["artifacts"]["scores_b"]["taskOutputArtifact"]
    assert collected["producerTask"] == "for-loop-1"  # every language's second scores
    # a scorer that calls an external service is never cached
    assert not loop["score"]["cachingOptions"].get("enableCache")


def test_online_rl_methods_train_from_prompts_without_pairs(tmp_path):
    spec = _compile(tmp_path, None, ["training.method=ppo"])
    root = spec["root"]["dag"]["tasks"]
    assert "prepare-data" not in root
    assert "pairs" not in root["train"]["inputs"].get("artifacts", {})
    assert root["train"]["inputs"]["parameters"]["rl"]["componentInputParameter"] == "rl"
    call = spec["components"]["comp-for-loop-1"]["dag"]["tasks"]["evaluate-language"]
    labels = {
        call["inputs"]["parameters"][name]["runtimeValue"]["constant"]
        for name in ("base_label", "ppo_label")
    }
    assert labels == {"base", "ppo"}


# --- stage → image → resources ------------------------------------------------------------


def _gpu_images(spec: dict) -> dict[str, str]:
    """executor → image, for every executor that asks for a GPU."""
    return {
        name: e["container"]["image"]
        for name, e in spec["deploymentSpec"]["executors"].items()
        if "accelerator" in e.get("container", {}).get("resources", {})
    }


@pytest.mark.parametrize(
    ("pipeline", "recipe"),
    [
        ("detox", "xg-mgpt.yaml"),
        ("interpret", "xg-mgpt-interpret.yaml"),
        ("eval", "eval-nightly.yaml"),
    ],
)
def test_every_task_with_a_gpu_runs_in_a_cuda_image(tmp_path, pipeline, recipe):
    from xdetox.components.images import CUDA_IMAGES

    config = load_config([CONFIGS / recipe, CONFIGS / "cluster" / "gke-a100.yaml"])
    out = compile_pipeline(config, tmp_path / "p.yaml", pipeline)
    gpu = _gpu_images(next(yaml.safe_load_all(out.read_text())))
    assert gpu  # the cluster file asks for GPUs on model stages
    assert {name: image for name, image in gpu.items() if image not in CUDA_IMAGES} == {}


def test_metrics_asks_for_a_gpu_in_the_cuda_image(gke_spec):
    from xdetox.components.images import TRAIN_IMAGE

    executor = gke_spec["deploymentSpec"]["executors"]["exec-language-metrics"]
    assert executor["container"]["image"] == TRAIN_IMAGE  # perplexity on a 7B model: a GPU
    assert executor["container"]["resources"]["accelerator"]["resourceCount"] == "1"


def test_the_stage_table_names_every_stage_once():
    from xdetox.components.images import CUDA_IMAGES, STAGES
    from xdetox.config import STAGES as CONFIG_STAGES

    assert set(STAGES) == set(CONFIG_STAGES)
    cpu = {stage for stage, s in STAGES.items() if s.image not in CUDA_IMAGES}
    assert cpu == {"load_model", "prepare_data", "prepare_prompts", "score", "report",
                   "compare", "agreement", "interpret_report"}  # fmt: skip


def test_gpu_on_a_cpu_stage_is_one_line_error_and_nothing_is_written(tmp_path, capsys):
    from xdetox.cli.main import main

    out = tmp_path / "detox.yaml"
    code = main(["compile", "--set", "cluster.resources.score.gpu=1", "-o", str(out)])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1, err
    assert err[0].startswith("xdetox: error: cluster.resources.score.gpu: stage 'score' runs")
    assert not out.exists() and list(tmp_path.iterdir()) == []


# --- models move only when needed --------------------------------------------------------


def test_full_fine_tuning_has_no_merge(gke_spec):
    root = gke_spec["root"]["dag"]["tasks"]
    assert "merge" not in root  # xg-mgpt: mode full, the trained output is the whole model
    call = gke_spec["components"]["comp-for-loop-1"]["dag"]["tasks"]["evaluate-language"]
    tuned = call["inputs"]["artifacts"]["dpo_model"]["componentInputArtifact"]
    assert tuned == "pipelinechannel--train-tuned"


def test_preference_data_gets_the_tokenizer_source_not_the_model(toy_spec):
    task = toy_spec["root"]["dag"]["tasks"]["prepare-data"]
    assert "artifacts" not in task["inputs"]
    assert task["inputs"]["parameters"]["tokenizer_source"] == {
        "componentInputParameter": "base_model"
    }


def test_gcs_base_model_is_imported_where_it_lies(tmp_path):
    from kfp import compiler

    from xdetox.pipelines.detox import build_detox_pipeline

    spec = _compile(tmp_path, None, ["model.base=gs://bucket/models/base"])
    root = spec["root"]["dag"]["tasks"]
    assert "load-model" not in root
    importer = spec["deploymentSpec"]["executors"]["exec-importer"]["importer"]
    assert importer["artifactUri"] == {"runtimeParameter": "uri"}
    assert importer["typeSchema"]["schemaTitle"] == "system.Model"
    assert root["importer"]["inputs"]["parameters"]["uri"] == {
        "componentInputParameter": "base_model"
    }
    train_base = root["train"]["inputs"]["artifacts"]["base_model"]["taskOutputArtifact"]
    assert train_base["producerTask"] == "importer"
    # KFP's local runner cannot read gs:// artifacts: a local run loads (downloads) it.
    config = load_config(None, ["model.base=gs://bucket/models/base"])
    out = tmp_path / "local.yaml"
    compiler.Compiler().compile(build_detox_pipeline(config, local=True), str(out))
    assert "load-model" in yaml.safe_load(out.read_text())["root"]["dag"]["tasks"]
