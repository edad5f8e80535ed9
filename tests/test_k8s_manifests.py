"""Static checks of k8s/: manifests, the Kustomize overlay, and the GKE node pools.

No cluster here: every manifest and the rendered overlay are validated against the Kubernetes
schemas of a pinned version (kubernetes-validate, strict), checkov scans manifests, Kustomize
output and Terraform, and the tests assert the properties the platform relies on (empty secret
templates, the Workload Identity annotation, a gs:// pipeline root, namespaced least-privilege
RBAC, default-deny ingress, GPU pools that scale from zero behind a taint).
The tools live in the tools venv (``make tools``); a missing one fails the test, never skips.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
from pathlib import Path

import pytest
import yaml
from fakes.lint_tools import reasons_precede_entries, tool, tools_env

REPO = Path(__file__).resolve().parents[1]
K8S = REPO / "k8s"
BASE = K8S / "base"
OVERLAY = K8S / "overlays" / "example"
GKE = K8S / "gke"
# Pinned Kubernetes version the schemas come from (one GKE offers); the
# manifests use only stable APIs, so newer servers accept them too.
KUBERNETES_VERSION = "1.34.0"
NAMESPACE = "xdetox"
RUNNER = "xdetox-runner"
GSA_RE = re.compile(
    r"^[a-z][-a-z0-9]{4,28}[a-z0-9]@(?P<project>[^@.]+)\.iam\.gserviceaccount\.com$"
)
PROJECT_ID_RE = re.compile(r"^[a-z][-a-z0-9]{4,28}[a-z0-9]$")
BUCKET_URI_RE = re.compile(r"^gs://(?P<bucket>[a-z0-9][a-z0-9._-]{1,61}[a-z0-9])(/[^\s]*)?$")


# --- helpers --------------------------------------------------------------------------------


def load_all(path: Path) -> list[dict]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc]


def manifest_files() -> list[Path]:
    """Every Kubernetes manifest under k8s/ (Kustomize and checkov configs are not manifests)."""
    return sorted(
        p
        for p in K8S.rglob("*.yaml")
        if p.name not in {"kustomization.yaml", ".checkov.yaml"} and not p.name.startswith(".")
    )


def kustomize(folder: Path) -> list[dict]:
    result = subprocess.run(
        [tool("kubectl"), "kustomize", str(folder)], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, f"kubectl kustomize {folder}: {result.stderr}"
    return [doc for doc in yaml.safe_load_all(result.stdout) if doc]


@pytest.fixture(scope="module")
def rendered(tmp_path_factory) -> dict[str, tuple[list[dict], Path]]:
    """Base and example overlay rendered by kustomize, as objects and as files to validate."""
    out = tmp_path_factory.mktemp("kustomize")
    result = {}
    for name, folder in (("base", BASE), ("overlay", OVERLAY)):
        objects = kustomize(folder)
        path = out / f"{name}.yaml"
        path.write_text(yaml.safe_dump_all(objects, sort_keys=False))
        result[name] = (objects, path)
    return result


def find(objects: list[dict], kind: str, name: str) -> dict:
    matches = [o for o in objects if o["kind"] == kind and o["metadata"]["name"] == name]
    assert len(matches) == 1, f"expected one {kind}/{name}, found {len(matches)}"
    return matches[0]


def validate(paths: list[Path]) -> subprocess.CompletedProcess:
    return subprocess.run(
        [
            tool("kubernetes-validate"),
            "--kubernetes-version",
            KUBERNETES_VERSION,
            "--strict",
            *map(str, paths),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )


def assert_valid(paths: list[Path]) -> None:
    result = validate(paths)
    output = result.stdout + result.stderr
    # WARN = no schema for the kind (a typo in apiVersion/kind): as bad as an error here.
    problems = [line for line in output.splitlines() if line.startswith(("ERROR", "WARN"))]
    assert result.returncode == 0 and problems == [], output
    passed = [line for line in output.splitlines() if " passed for resource " in line]
    documents = sum(len(load_all(p)) for p in paths)
    assert len(passed) == documents, output


def hcl(path: Path) -> dict:
    """Terraform file as JSON, parsed by the HCL2 parser checkov ships in the tools venv."""
    code = "import hcl2, json, sys; print(json.dumps(hcl2.load(open(sys.argv[1]))))"
    python = str(Path(tool("checkov")).parent / "python")
    result = subprocess.run(
        [python, "-c", code, str(path)], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def one(value):
    """bc-python-hcl2 wraps every attribute and block in a list."""
    while isinstance(value, list):
        assert len(value) == 1, value
        value = value[0]
    return value


# --- schema validation ----------------------------------------------------------------------


def test_every_manifest_validates_against_the_pinned_kubernetes():
    files = manifest_files()
    assert {p.name for p in files} >= {
        "namespace.yaml",
        "serviceaccount.yaml",
        "rbac.yaml",
        "secrets.template.yaml",
        "kfp-launcher-configmap.yaml",
        "networkpolicy.yaml",
    }
    assert_valid(files)


def test_kustomize_output_validates(rendered):
    for objects, path in rendered.values():
        assert objects, path
        assert_valid([path])


def test_validation_rejects_a_misspelled_field(tmp_path):
    # The check has teeth: strict validation refuses an unknown field (policyType for
    # policyTypes), and an unknown kind is at least reported.
    bad = tmp_path / "bad.yaml"
    policy = load_all(BASE / "networkpolicy.yaml")[0]
    policy["spec"]["policyType"] = policy["spec"].pop("policyTypes")
    bad.write_text(yaml.safe_dump(policy))
    result = validate([bad])
    assert result.returncode != 0
    assert "policyType" in result.stdout + result.stderr


def test_base_kustomization_lists_every_manifest_but_the_secret_template():
    kustomization = yaml.safe_load((BASE / "kustomization.yaml").read_text())
    assert kustomization["namespace"] == NAMESPACE
    listed = set(kustomization["resources"])
    present = {p.name for p in BASE.glob("*.yaml") if p.name != "kustomization.yaml"}
    assert listed == present - {"secrets.template.yaml"}
    assert "secrets.template.yaml" not in listed  # nobody applies empty secrets by accident


# --- checkov --------------------------------------------------------------------------------


@pytest.mark.slow
def test_checkov_k8s_and_terraform_pass():
    config = K8S / ".checkov.yaml"
    assert reasons_precede_entries(config, "skip-check") == []
    result = subprocess.run(
        [tool("checkov"), "--config-file", str(config), "-d", str(K8S), "-o", "json"],
        capture_output=True,
        text=True,
        env=tools_env("kubectl"),
        timeout=300,
    )
    reports = json.loads(result.stdout)
    reports = reports if isinstance(reports, list) else [reports]
    checked = {report.get("check_type") for report in reports}
    assert {"kubernetes", "kustomize", "terraform"} <= checked, checked
    failures = [
        f"{report['check_type']}: {failed['check_id']} {failed['check_name']} "
        f"({failed['file_path']}:{failed['file_line_range']})"
        for report in reports
        for failed in report.get("results", {}).get("failed_checks", [])
    ]
    assert failures == []
    assert all(report.get("summary", {}).get("parsing_errors", 0) == 0 for report in reports)
    assert all(report.get("summary", {}).get("passed", 0) > 0 for report in reports)
    assert result.returncode == 0, result.stderr[-2000:]


# --- what the platform relies on --------------------------------------------------------------


def test_secret_templates_carry_no_values():
    secrets = {s["metadata"]["name"]: s for s in load_all(BASE / "secrets.template.yaml")}
    expected = {"perspective-api-key": "PERSPECTIVE_API_KEY", "hf-token": "HF_TOKEN"}
    assert set(secrets) == set(expected)
    for name, key in expected.items():
        secret = secrets[name]
        assert secret["kind"] == "Secret"
        assert secret["metadata"]["namespace"] == NAMESPACE
        assert "data" not in secret, f"{name}: base64 data in a template"
        assert secret["stringData"] == {key: ""}, f"{name}: template holds a value"


def test_no_secret_is_rendered_or_committed_elsewhere(rendered):
    for objects, _ in rendered.values():
        assert [o for o in objects if o["kind"] == "Secret"] == []
    for path in manifest_files():
        if path.name == "secrets.template.yaml":
            continue
        assert all(doc["kind"] != "Secret" for doc in load_all(path)), path


def test_serviceaccount_has_the_workload_identity_annotation(rendered):
    account = load_all(BASE / "serviceaccount.yaml")[0]
    assert account["kind"] == "ServiceAccount"
    assert account["metadata"]["name"] == RUNNER
    annotation = account["metadata"]["annotations"]["iam.gke.io/gcp-service-account"]
    assert GSA_RE.match(annotation), annotation
    # The overlay turns the placeholder into a real project id.
    overlay_account = find(rendered["overlay"][0], "ServiceAccount", RUNNER)
    email = overlay_account["metadata"]["annotations"]["iam.gke.io/gcp-service-account"]
    match = GSA_RE.match(email)
    assert match and PROJECT_ID_RE.match(match.group("project")), email
    assert "PROJECT_ID" not in email


def test_kfp_launcher_pipeline_root_is_a_gcs_uri(rendered):
    configmap = load_all(BASE / "kfp-launcher-configmap.yaml")[0]
    assert configmap["kind"] == "ConfigMap" and configmap["metadata"]["name"] == "kfp-launcher"
    assert configmap["data"]["defaultPipelineRoot"].startswith("gs://")
    overlay_root = find(rendered["overlay"][0], "ConfigMap", "kfp-launcher")["data"]
    root = overlay_root["defaultPipelineRoot"]
    assert BUCKET_URI_RE.match(root), root  # a valid bucket name, not the BUCKET placeholder


def test_rbac_is_namespaced_and_minimal(rendered):
    objects = rendered["overlay"][0]
    kinds = {o["kind"] for o in objects}
    assert not kinds & {"ClusterRole", "ClusterRoleBinding"}, "nothing cluster-wide"
    role = find(objects, "Role", RUNNER)
    assert role["metadata"]["namespace"] == NAMESPACE
    for rule in role["rules"]:
        for field in ("apiGroups", "resources", "verbs"):
            assert "*" not in rule[field], f"wildcard in {field}: {rule}"
        assert "secrets" not in rule["resources"], "secrets reach pods via env, not the API"
        assert not {"pods/exec", "pods/attach"} & set(rule["resources"]), rule
        assert not {"create", "delete", "deletecollection", "escalate", "bind"} & set(
            rule["verbs"]
        ) or rule["resources"] == ["workflowtaskresults"], rule
    allowed = {(r, v) for rule in role["rules"] for r in rule["resources"] for v in rule["verbs"]}
    assert ("pods", "get") in allowed and ("pods/log", "get") in allowed
    binding = find(objects, "RoleBinding", RUNNER)
    assert binding["roleRef"] == {
        "apiGroup": "rbac.authorization.k8s.io",
        "kind": "Role",
        "name": RUNNER,
    }
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": RUNNER, "namespace": NAMESPACE}
    ]


def test_every_object_lives_in_the_xdetox_namespace(rendered):
    for objects, path in rendered.values():
        for obj in objects:
            if obj["kind"] == "Namespace":
                assert obj["metadata"]["name"] == NAMESPACE
            else:
                assert obj["metadata"]["namespace"] == NAMESPACE, f"{path}: {obj['kind']}"


def test_networkpolicy_denies_ingress_and_allows_only_dns_and_https_out(rendered):
    policies = [o for o in rendered["overlay"][0] if o["kind"] == "NetworkPolicy"]
    deny = [
        p
        for p in policies
        if p["spec"]["podSelector"] == {}
        and "Ingress" in p["spec"]["policyTypes"]
        and not p["spec"].get("ingress")
    ]
    assert deny, "no default-deny ingress policy for all pods"
    assert all(not p["spec"].get("ingress") for p in policies), "some policy admits ingress"
    egress_rules = [
        rule
        for p in policies
        if "Egress" in p["spec"]["policyTypes"] and p["spec"]["podSelector"] == {}
        for rule in p["spec"].get("egress", [])
    ]
    assert egress_rules, "no egress policy: pods could not even resolve names"
    ports = {(port["protocol"], port["port"]) for rule in egress_rules for port in rule["ports"]}
    assert {("UDP", 53), ("TCP", 53), ("TCP", 443)} <= ports
    # Every egress rule names its ports: no rule opens all ports to anywhere.
    assert all(rule.get("ports") for rule in egress_rules)


def test_namespace_enforces_pod_security_baseline():
    namespace = load_all(BASE / "namespace.yaml")[0]
    labels = namespace["metadata"]["labels"]
    assert labels["pod-security.kubernetes.io/enforce"] in {"baseline", "restricted"}


# --- GKE node pools ---------------------------------------------------------------------------


def node_pools() -> tuple[dict, dict]:
    """(node pool resource, default pool map) from node-pools.tf."""
    parsed = hcl(GKE / "node-pools.tf")
    resources = {}
    for block in parsed["resource"]:
        for kind, named in block.items():
            for name, body in named.items():
                resources[(kind, name)] = body
    pool = resources[("google_container_node_pool", "gpu")]
    variables = {name: body for block in parsed["variable"] for name, body in block.items()}
    return pool, one(variables["gpu_pools"]["default"])


def test_terraform_gpu_pools_scale_from_zero_behind_a_taint():
    pool, pools = node_pools()
    assert pools, "no GPU pool defined"
    assert one(pool["initial_node_count"]) == 0
    autoscaling = one(pool["autoscaling"])
    assert one(autoscaling["total_min_node_count"]) == 0
    config = one(pool["node_config"])
    accelerator = one(config["guest_accelerator"])
    assert one(accelerator["type"]) == "${each.value.gpu_type}"
    driver = one(accelerator["gpu_driver_installation_config"])
    assert one(driver["gpu_driver_version"]) in {"DEFAULT", "LATEST"}
    taint = one(config["taint"])
    assert (one(taint["key"]), one(taint["value"]), one(taint["effect"])) == (
        "nvidia.com/gpu",
        "present",
        "NO_SCHEDULE",
    )
    assert one(one(config["workload_metadata_config"])["mode"]) == "GKE_METADATA"
    shielded = one(config["shielded_instance_config"])
    assert one(shielded["enable_secure_boot"]) is True
    assert one(shielded["enable_integrity_monitoring"]) is True
    for name, spec in pools.items():
        assert spec["gpu_type"].startswith("nvidia-"), name
        assert spec["max_nodes"] >= 1 and spec["gpu_count"] >= 1, name


def test_gcloud_script_matches_the_terraform_pools():
    _, pools = node_pools()
    env = {
        **os.environ,
        "PROJECT_ID": "my-gcp-project",
        "CLUSTER": "c",
        "LOCATION": "us-central1",
        "BUCKET": "my-bucket",
    }
    result = subprocess.run(
        ["bash", str(GKE / "create-node-pool.sh"), "--dry-run"],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    commands = [shlex.split(line) for line in result.stdout.splitlines()]
    creates = {}
    for words in commands:
        if words[:4] == ["gcloud", "container", "node-pools", "create"]:
            creates[words[4]] = words
    assert set(creates) == set(pools)
    for name, spec in pools.items():
        words = creates[name]

        def option(flag: str, words: list[str] = words) -> str:
            return words[words.index(flag) + 1]

        assert option("--machine-type") == spec["machine_type"]
        accelerator = option("--accelerator")
        assert f"type={spec['gpu_type']}" in accelerator
        assert f"count={spec['gpu_count']}" in accelerator
        assert "gpu-driver-version=latest" in accelerator
        assert option("--node-taints") == "nvidia.com/gpu=present:NoSchedule"
        assert option("--total-min-nodes") == "0"
        assert option("--total-max-nodes") == str(spec["max_nodes"])
        assert option("--disk-size") == str(spec["disk_size_gb"])
        assert option("--workload-metadata") == "GKE_METADATA"
        assert "--shielded-secure-boot" in words
    (binding,) = [words for words in commands if "roles/iam.workloadIdentityUser" in words]
    member = binding[binding.index("--member") + 1]
    assert member == f"serviceAccount:my-gcp-project.svc.id.goog[{NAMESPACE}/{RUNNER}]"


def test_gcloud_script_is_shellcheck_clean_and_needs_its_settings():
    result = subprocess.run(
        [tool("shellcheck"), str(GKE / "create-node-pool.sh")], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout + result.stderr
    env = {k: v for k, v in os.environ.items() if k not in {"PROJECT_ID", "BUCKET"}}
    missing = subprocess.run(
        ["bash", str(GKE / "create-node-pool.sh"), "--dry-run"],
        capture_output=True,
        text=True,
        env={**env, "CLUSTER": "c", "LOCATION": "l"},
        timeout=60,
    )
    assert missing.returncode != 0
    assert "PROJECT_ID" in missing.stderr
    assert missing.stdout == ""
