"""``xdetox submit/schedule/runs`` through the real CLI and the real kfp.Client, against a local
fake KFP server (tests/fakes/kfp_server.py) that records every request it receives."""

from __future__ import annotations

import hashlib
import json
import logging
import socket
import sys
from pathlib import Path

import kfp
import pytest
import yaml

from xdetox import __version__
from xdetox.cli.main import main
from xdetox.config import load_config
from xdetox.errors import ConfigError
from xdetox.pipelines.cron import validate_cron
from xdetox.pipelines.kfp_auth import resolve_connection

sys.path.insert(0, str(Path(__file__).parent / "fakes"))
from kfp_server import FakeKFP

TOKEN = "tok-5f3a9c1e-do-not-print"
PIPELINE = "xdetox-detox"
# Every stage of the detox pipeline, as task names in the compiled DAGs (loop tasks included).
STAGE_TASKS = {"load-model", "prepare-data", "prepare-prompts", "train", "merge", "generate",
               "generate-2", "score", "score-2", "language-metrics", "report"}  # fmt: skip


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch, tmp_path):
    """No ambient KFP settings: every test says what it uses."""
    for var in ("KFP_TOKEN", "KF_PIPELINES_ENDPOINT", "KF_PIPELINES_UI_ENDPOINT",
                "KF_PIPELINES_IAP_OAUTH2_CLIENT_ID", "KF_PIPELINES_SA_TOKEN_PATH",
                "KUBERNETES_SERVICE_HOST"):  # fmt: skip
        monkeypatch.delenv(var, raising=False)
    # kfp reads (and in multi-user mode writes) a context file under ~/.config/kfp.
    monkeypatch.setattr(kfp.Client, "_LOCAL_KFP_CONTEXT", str(tmp_path / "kfp-context.json"))


@pytest.fixture
def server():
    with FakeKFP(token=TOKEN) as fake:
        yield fake


def _submit(server, *extra: str) -> int:
    return main(["submit", "--host", server.url, "--token", TOKEN, *extra])


def _one_error_line(err: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("xdetox: error: ")
    return lines[0]


def _expected_version(overrides: list[str], suffix: str = "") -> str:
    data = load_config(None, overrides).model_dump(mode="json")
    canonical = json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return f"{__version__}-{hashlib.sha256(canonical.encode()).hexdigest()[:12]}{suffix}"


def _spec(server, version_id: str) -> dict:
    return next(yaml.safe_load_all(server.specs[version_id]))


def _all_tasks(spec: dict) -> dict[str, dict]:
    tasks = dict(spec["root"]["dag"]["tasks"])
    for component in spec["components"].values():
        tasks.update(component.get("dag", {}).get("tasks", {}))
    return tasks


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# submit ------------------------------------------------------------------------------------


def test_submit_uploads_by_name_with_version_and_creates_run(server, capsys):
    code = _submit(server, "--set", "training.beta=0.2", "--experiment", "exp-a",
                   "--run-name", "first")  # fmt: skip
    out, err = capsys.readouterr()
    assert code == 0, err

    (created_exp,) = server.calls("POST", "/experiments")
    assert created_exp.json["display_name"] == "exp-a"
    (upload,) = server.calls("POST", "/pipelines/upload")
    assert upload.param("name") == PIPELINE
    (upload_version,) = server.calls("POST", "/pipelines/upload_version")
    version_name = _expected_version(["training.beta=0.2"])
    assert upload_version.param("name") == version_name
    assert upload_version.param("pipelineid") == next(iter(server.pipelines))

    (version,) = [v for v in server.versions_of(PIPELINE) if v["name"] == version_name]
    spec = _spec(server, version["pipeline_version_id"])
    params = spec["root"]["inputDefinitions"]["parameters"]
    assert params["training"]["defaultValue"]["beta"] == 0.2
    assert set(_all_tasks(spec)) >= STAGE_TASKS

    (run_call,) = server.calls("POST", "/runs")
    body = run_call.json
    assert body["display_name"] == "first"
    (experiment,) = server.experiments.values()
    assert body["experiment_id"] == experiment["experiment_id"]
    assert body["pipeline_version_reference"] == {
        "pipeline_id": version["pipeline_id"],
        "pipeline_version_id": version["pipeline_version_id"],
    }
    assert body["runtime_config"]["parameters"] == {}  # the version's defaults apply
    run_id = next(iter(server.runs))
    assert f"{server.url}/#/runs/details/{run_id}" in out
    assert version_name in out


def test_token_sent_as_bearer_and_never_shown(server, capsys, caplog):
    caplog.set_level(logging.DEBUG)
    assert _submit(server, "--debug") == 0
    out, err = capsys.readouterr()
    assert server.requests
    assert all(r.headers.get("authorization") == f"Bearer {TOKEN}" for r in server.requests)
    assert TOKEN not in out + err + caplog.text
    assert all(TOKEN not in spec for spec in server.specs.values())
    assert all(TOKEN.encode() not in r.body for r in server.requests)


def test_token_from_environment(server, monkeypatch, capsys):
    monkeypatch.setenv("KFP_TOKEN", TOKEN + "\n")  # as pasted from a file
    assert main(["submit", "--host", server.url]) == 0
    assert server.requests[-1].headers["authorization"] == f"Bearer {TOKEN}"
    assert TOKEN not in "".join(capsys.readouterr())


def test_param_sets_runtime_parameters_merged_over_recipe(server, capsys):
    toy = load_config()
    params = ["training.beta=0.3", "generation={n: 3}", "base_model=ai-forever/mGPT",
              "training.learning_rate=1e-4", "training.method=dpo"]  # fmt: skip
    code = _submit(server, *[arg for p in params for arg in ("--param", p)])
    assert code == 0, capsys.readouterr().err
    params = server.calls("POST", "/runs")[0].json["runtime_config"]["parameters"]
    assert set(params) == {"training", "generation", "base_model"}
    assert params["training"]["beta"] == 0.3
    assert params["training"]["learning_rate"] == 1e-4  # "1e-4" is a string to YAML 1.1
    assert params["training"]["warmup_steps"] == toy.training.warmup_steps  # recipe kept
    assert params["generation"]["n"] == 3
    assert params["generation"]["max_new_tokens"] == toy.generation.max_new_tokens
    assert params["base_model"] == "ai-forever/mGPT"
    assert params["training"]["method"] == "dpo"  # the compiled method again: same graph


@pytest.mark.parametrize(
    ("param", "key"),
    [
        ("training.method=ppo", "training.method"),  # no preference pairs, another trainer
        ("training={method: sft_dpo}", "training.method"),
        ("training.mode=full", "training.mode"),  # no merge task
        ("scoring.agreement_with=perspective", "scoring.agreement_with"),  # more score tasks
        ("scoring.scorer=perspective", "scoring.scorer"),  # never cached
        ("base_model=gs://b/m", "model.base"),  # imported instead of loaded
        # metrics no longer read the base model: its input to the metrics task goes away
        ("metrics_config={perplexity: false, diversity_tokenizer: whitespace}",
         "metrics.perplexity_model / metrics.diversity_tokenizer"),
    ],
)
@pytest.mark.parametrize("command", ["submit", "schedule"])
def test_graph_settings_are_compile_time_only(server, capsys, param, key, command):
    extra = ["--cron", "0 0 6 * * *"] if command == "schedule" else []
    argv = [command, "--host", server.url, "--token", TOKEN, *extra, "--param", param]
    assert main(argv) == 2
    line = _one_error_line(capsys.readouterr().err)
    assert f"{key} shapes the pipeline's graph" in line
    assert f"--config or --set {key}=" in line
    assert server.requests == []  # no pipeline, version, experiment or run was created
    assert not (server.pipelines or server.versions or server.runs or server.recurring_runs)


def test_registered_pipelines_declare_their_shape_keys():
    from xdetox.pipelines.registry import PIPELINES, SHAPE_KEYS

    assert set(SHAPE_KEYS) == set(PIPELINES)
    detox = {k.key for k in SHAPE_KEYS["detox"]}
    assert {"training.method", "training.mode", "scoring.agreement_with",
            "interpret.run_in_detox", "model.base"} <= detox  # fmt: skip
    assert "interpret.tuned_model" in {k.key for k in SHAPE_KEYS["interpret"]}


@pytest.mark.parametrize(
    ("param", "message"),
    [
        ("betaa=1", "unknown parameter 'betaa' (known: base_model, data, generation"),
        ("training.betta=1", "--param training: betta: unknown key"),
        ("base_model.x=1", "base_model is not a dict parameter"),
        ("languages=en", "expected list"),
    ],
)
def test_bad_param_is_one_line_before_any_request(server, capsys, param, message):
    assert _submit(server, "--param", param) == 2
    assert message in _one_error_line(capsys.readouterr().err)
    assert server.requests == []  # compiled and checked locally first


def test_same_config_reuses_version_new_config_makes_new_one(server, capsys):
    assert _submit(server) == 0
    assert _submit(server) == 0
    out = capsys.readouterr().out
    assert "(reused)" in out
    assert len(server.calls("POST", "/pipelines/upload")) == 1
    assert len(server.calls("POST", "/pipelines/upload_version")) == 1
    first, second = (r.json["pipeline_version_reference"] for r in server.calls("POST", "/runs"))
    assert first == second

    assert _submit(server, "--set", "generation.n=2") == 0
    names = [v["name"] for v in server.versions_of(PIPELINE)]
    # upload creates the pipeline with a first version named after it, as the real server does
    assert names == [PIPELINE, _expected_version([]), _expected_version(["generation.n=2"])]
    third = server.calls("POST", "/runs")[-1].json["pipeline_version_reference"]
    assert third["pipeline_version_id"] != first["pipeline_version_id"]
    assert len(server.experiments) == 1  # "toy", created once


@pytest.mark.slow
def test_reusing_a_version_built_from_other_code_warns(server, caplog):
    assert _submit(server) == 0
    assert _submit(server) == 0
    assert "different code" not in caplog.text  # same code: silent reuse
    (version,) = [v for v in server.versions_of(PIPELINE) if v["name"] == _expected_version([])]
    version["pipeline_spec"]["deploymentSpec"]["executors"].popitem()  # as if older code
    assert _submit(server) == 0
    assert "compiled from different code than this checkout" in caplog.text
    assert (
        server.calls("POST", "/runs")[-1].json["pipeline_version_reference"]["pipeline_version_id"]
        == version["pipeline_version_id"]
    )


def test_no_cache_compiles_caching_off_into_its_own_version(server, capsys):
    assert _submit(server) == 0
    assert _submit(server, "--no-cache") == 0
    assert capsys.readouterr()
    by_name = {v["name"]: v["pipeline_version_id"] for v in server.versions_of(PIPELINE)}
    default = _all_tasks(_spec(server, by_name[_expected_version([])]))
    uncached = _all_tasks(_spec(server, by_name[_expected_version([], "-nocache")]))
    # as compiled: every stage cached (the toy recipe's offline scorer is deterministic)
    assert default["train"]["cachingOptions"]["enableCache"] is True
    assert default["score"]["cachingOptions"]["enableCache"] is True
    assert {t["cachingOptions"]["enableCache"] for t in uncached.values()} == {False}


def test_unknown_pipeline_lists_known(server, capsys):
    assert _submit(server, "--pipeline", "nope") == 2
    assert "unknown pipeline (known: detox, eval, interpret)" in _one_error_line(
        capsys.readouterr().err
    )


# --wait ------------------------------------------------------------------------------------


@pytest.mark.parametrize(("state", "code"), [("SUCCEEDED", 0), ("FAILED", 2), ("CANCELED", 2)])
def test_wait_prints_final_state_and_fails_on_failure(state, code, capsys):
    with FakeKFP(finish_state=state) as fake:
        assert main(["submit", "--host", fake.url, "--wait", "--poll", "0.05"]) == code
    out, err = capsys.readouterr()
    if code == 0:
        assert f"state       {state}" in out
    else:
        assert f"finished {state}" in _one_error_line(err)


def test_wait_times_out_with_link(capsys):
    with FakeKFP(finish_state=None) as fake:
        args = ["submit", "--host", fake.url, "--wait", "--timeout", "0.2", "--poll", "0.05"]
        assert main(args) == 2
        run_id = next(iter(fake.runs))
    line = _one_error_line(capsys.readouterr().err)
    assert "still PENDING after 0.2 s" in line and f"/#/runs/details/{run_id}" in line


# schedule ----------------------------------------------------------------------------------


def _schedule(server, *extra: str) -> int:
    return main(["schedule", "--host", server.url, "--token", TOKEN, *extra])


def test_schedule_sends_cron_concurrency_and_no_catchup(server, capsys):
    assert _schedule(server, "--cron", "0 0 6 * * *", "--max-concurrency", "3") == 0
    (call,) = server.calls("POST", "/recurringruns")
    body = call.json
    assert body["trigger"] == {"cron_schedule": {"cron": "0 0 6 * * *"}}
    assert int(body["max_concurrency"]) == 3
    assert body["no_catchup"] is True
    assert body["mode"] == "ENABLE"
    assert body["display_name"] == "toy-detox-schedule"
    version = server.versions[body["pipeline_version_reference"]["pipeline_version_id"]]
    # same inputs every time: scheduled runs compile with caching off unless --cache
    assert version["name"] == _expected_version([], "-nocache")

    assert _schedule(server, "--cron", "0 30 2 * * MON-FRI", "--catchup", "--name", "b") == 0
    assert server.calls("POST", "/recurringruns")[-1].json["no_catchup"] is False
    assert "no catch-up" in capsys.readouterr().out


def test_schedule_refuses_a_second_schedule_of_the_same_name(server, capsys):
    assert _schedule(server, "--cron", "0 0 6 * * *") == 0
    capsys.readouterr()
    assert _schedule(server, "--cron", "0 0 7 * * *") == 2
    assert "already exists" in _one_error_line(capsys.readouterr().err)
    assert len(server.recurring_runs) == 1


@pytest.mark.parametrize(
    ("cron", "message"),
    [
        ("0 6 * * *", 'got 5; for a 5-field crontab add the seconds: "0 0 6 * * *"'),
        ("0 0 6 * * * *", "KFP wants 6 fields, seconds first"),
        ("0 0 25 * * *", "field 3 (hour): 25 is out of range 0-23"),
        ("0 0 6 * * XYZ", "field 6 (day-of-week): 'XYZ' is not a number"),
        ("0 ? 6 * * *", "'?' is only allowed for day-of-month and day-of-week"),
    ],
)
def test_bad_cron_is_one_line_before_any_request(server, capsys, cron, message):
    assert _schedule(server, "--cron", cron) == 2
    assert message in _one_error_line(capsys.readouterr().err)
    assert server.requests == []


@pytest.mark.parametrize("cron", ["0 */15 * * * *", "0 0 6 ? * MON-FRI", "30 0 0 1,15 JAN-JUN *"])
def test_valid_crons_pass(cron):
    assert validate_cron(cron) == cron


# runs --------------------------------------------------------------------------------------


def test_runs_lists_recent_runs_with_state_and_link(server, capsys):
    exp = server._create_experiment({"display_name": "nightly"})
    other = server._create_experiment({"display_name": "other"})
    old = server.add_run(exp["experiment_id"], "old-run", "SUCCEEDED")
    mid = server.add_run(exp["experiment_id"], "mid-run", "FAILED")
    new = server.add_run(exp["experiment_id"], "new-run", "RUNNING")
    server.add_run(other["experiment_id"], "elsewhere", "SUCCEEDED")

    args = ["runs", "--host", server.url, "--token", TOKEN, "--experiment", "nightly"]
    assert main(args) == 0
    out = capsys.readouterr().out
    for run, state in ((old, "SUCCEEDED"), (mid, "FAILED"), (new, "RUNNING")):
        line = next(ln for ln in out.splitlines() if run["display_name"] in ln)
        assert state in line
        assert f"{server.url}/#/runs/details/{run['run_id']}" in line
    assert "elsewhere" not in out
    assert out.index("new-run") < out.index("mid-run") < out.index("old-run")  # newest first

    assert main([*args, "--limit", "2"]) == 0
    out = capsys.readouterr().out
    assert "new-run" in out and "mid-run" in out and "old-run" not in out


def test_runs_unknown_experiment(server, capsys):
    server._create_experiment({"display_name": "nightly"})
    assert main(["runs", "--host", server.url, "--token", TOKEN, "--experiment", "nope"]) == 2
    line = _one_error_line(capsys.readouterr().err)
    assert "unknown experiment 'nope'" in line and "nightly" in line


# connection errors -------------------------------------------------------------------------


def test_wrong_token_is_one_line_401_without_the_token(server, monkeypatch, capsys):
    wrong = "wrong-token-7c1d"
    monkeypatch.setenv("KFP_TOKEN", wrong)
    assert main(["submit", "--host", server.url]) == 2
    out, err = capsys.readouterr()
    line = _one_error_line(err)
    assert "not authorised" in line and "check --token / KFP_TOKEN" in line
    assert wrong not in out + err and TOKEN not in out + err
    assert [r.status for r in server.requests] == [401]  # no retries, nothing uploaded


def test_debug_output_of_an_auth_failure_hides_the_token(server, monkeypatch, capsys, caplog):
    caplog.set_level(logging.DEBUG)
    monkeypatch.setenv("KFP_TOKEN", "wrong-token-7c1d")
    assert main(["runs", "--host", server.url, "--debug"]) == 2
    out, err = capsys.readouterr()
    assert "Traceback" in err and "HTTP 401" in err
    assert "(401)" in caplog.text  # the server's answer, logged at debug level
    assert "wrong-token-7c1d" not in out + err + caplog.text


def test_missing_token_says_none_was_sent(server, capsys):
    assert main(["runs", "--host", server.url]) == 2
    assert "no credentials were sent" in _one_error_line(capsys.readouterr().err)


def test_unreachable_host_is_one_line(capsys):
    url = f"http://127.0.0.1:{_closed_port()}"
    assert main(["runs", "--host", url]) == 2
    line = _one_error_line(capsys.readouterr().err)
    assert f"cannot reach KFP at {url}" in line and "connection refused" in line


def test_not_a_kfp_endpoint_404(server, capsys):
    assert main(["runs", "--host", server.url + "/not-kfp", "--token", TOKEN]) == 2
    assert "not a KFP endpoint?" in _one_error_line(capsys.readouterr().err)


def test_login_page_instead_of_the_api(capsys):
    with FakeKFP(login_page=True) as fake:
        assert main(["submit", "--host", fake.url]) == 2
    line = _one_error_line(capsys.readouterr().err)
    assert "answered the KFP health check with text/html" in line and "login page" in line


def test_host_from_environment_or_a_clear_error(server, monkeypatch, capsys):
    assert main(["runs"]) == 2
    assert "--host is required" in _one_error_line(capsys.readouterr().err)
    monkeypatch.setenv("KF_PIPELINES_ENDPOINT", server.url)
    monkeypatch.setenv("KFP_TOKEN", TOKEN)
    assert main(["runs"]) == 0
    assert "no runs" in capsys.readouterr().out


def test_in_cluster_service_account_token(monkeypatch, tmp_path, capsys):
    sa_token = "sa-token-0b7e"
    token_file = tmp_path / "token"
    token_file.write_text(sa_token + "\n")
    monkeypatch.setenv("KF_PIPELINES_SA_TOKEN_PATH", str(token_file))
    with FakeKFP(token=sa_token) as fake:
        assert main(["submit", "--host", fake.url, "--in-cluster"]) == 0
        assert {r.headers["authorization"] for r in fake.requests} == {f"Bearer {sa_token}"}
    assert sa_token not in "".join(capsys.readouterr())


def test_multi_user_needs_a_namespace_and_uses_it(capsys):
    with FakeKFP(multi_user=True) as fake:
        assert main(["submit", "--host", fake.url]) == 2
        assert "multi-user: pass --namespace" in _one_error_line(capsys.readouterr().err)
        assert main(["submit", "--host", fake.url, "--namespace", "team-a"]) == 0
        assert fake.calls("POST", "/experiments")[0].json["namespace"] == "team-a"
        assert fake.calls("POST", "/pipelines/upload")[0].param("namespace") == "team-a"
        assert fake.calls("GET", "/pipelines")[0].param("namespace") == "team-a"


# connection settings -----------------------------------------------------------------------


def test_connection_settings_precedence_and_secrecy(tmp_path):
    env = {"KFP_TOKEN": "from-env", "KF_PIPELINES_ENDPOINT": "https://kfp.example/"}
    conn = resolve_connection(env=env)
    assert (conn.host, conn.auth, conn.token) == ("https://kfp.example", "token", "from-env")
    assert "from-env" not in repr(conn)
    assert conn.redact("Bearer from-env") == "Bearer ***"

    flag = resolve_connection(host="http://h:1", token="from-flag", env=env)
    assert flag.client_kwargs()["existing_token"] == "from-flag"
    iap = resolve_connection(host="https://h", iap_client_id="abc.apps", env=env)
    assert iap.client_kwargs() == {"host": "https://h", "client_id": "abc.apps"}
    assert iap.token is None  # KFP_TOKEN is not sent alongside IAP

    with pytest.raises(ConfigError, match="choose one way to authenticate"):
        resolve_connection(host="http://h", token="t", iap_client_id="i", env={})
    with pytest.raises(ConfigError, match="expected a URL"):
        resolve_connection(host="kfp.example:8080", env={})

    token_file = tmp_path / "sa"
    token_file.write_text("sa\n")
    pod = {"KUBERNETES_SERVICE_HOST": "10.0.0.1", "KF_PIPELINES_SA_TOKEN_PATH": str(token_file)}
    in_pod = resolve_connection(env=pod)  # inside a pod: in-cluster address and credentials
    assert in_pod.host == "http://ml-pipeline.kubeflow.svc.cluster.local:8888"
    assert in_pod.auth == "in-cluster"
    missing = {"KF_PIPELINES_SA_TOKEN_PATH": str(tmp_path / "missing")}
    with pytest.raises(ConfigError, match="no service-account token"):
        resolve_connection(host="http://h", in_cluster=True, env=missing)
