"""The built wheel is the product: one top-level package that compiles and runs stages on its own.

The repository keeps ``components/`` and ``pipelines/`` at the top level; setup.py maps them into
``xdetox.components`` and ``xdetox.pipelines``. These tests build the wheel, install it into a
clean folder (no editable finder, no checkout on the path), and run ``python -m xdetox`` and the
``xdetox`` script from there, in a working directory outside the repository.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parent.parent


def _source_tree(dest: Path) -> Path:
    """The files git would commit, copied to ``dest``: setuptools builds in-tree (``build/``)
    and keeps files there that were since deleted, so a wheel built from the checkout itself
    could carry modules the repository no longer has."""
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=REPO, check=True, capture_output=True,
    ).stdout.decode().split("\0")  # fmt: skip
    for name in filter(None, listed):
        src = REPO / name
        if src.is_file():
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / name)
    return dest


# slow: builds the wheel and installs it into a fresh virtual environment.
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    source = _source_tree(tmp_path_factory.mktemp("source"))
    # No build isolation: the venv's setuptools builds it, so the test needs no download.
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-build-isolation",
         "--wheel-dir", str(out), str(source)],
        check=True, capture_output=True, text=True,
    )  # fmt: skip
    (found,) = out.glob("xdetox-*.whl")
    return found


@pytest.fixture(scope="module")
def installed(wheel, tmp_path_factory) -> Path:
    target = tmp_path_factory.mktemp("site")
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--target", str(target),
         str(wheel)],
        check=True, capture_output=True, text=True,
    )  # fmt: skip
    return target


def _run(args: list[str], target: Path, cwd: Path) -> subprocess.CompletedProcess:
    # The target first on the path: the installed wheel, not the editable checkout, is imported.
    env = {**os.environ, "PYTHONPATH": str(target)}
    return subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=600)


def test_the_wheel_has_one_top_level_package(wheel):
    names = zipfile.ZipFile(wheel).namelist()
    tops = {n.split("/")[0] for n in names if not n.split("/")[0].endswith(".dist-info")}
    assert tops == {"xdetox"}
    top_level = zipfile.ZipFile(wheel).read("xdetox-0.1.0.dist-info/top_level.txt").decode()
    assert top_level.split() == ["xdetox"]
    # The mapped folders and the package data they carry.
    for path in (
        "xdetox/components/generate/component.py",
        "xdetox/pipelines/detox.py",
        "xdetox/cli/main.py",
        "xdetox/pipelines/configs/xg-mgpt.yaml",
        "xdetox/pipelines/configs/cluster/gke-a100.yaml",
        "xdetox/components/score/lexicons/en.tsv",
        "xdetox/components/train/deepspeed/zero3.yaml",
        "xdetox/toy/data/prompts.jsonl",
    ):
        assert path in names, path
    assert not any(n.startswith(("tests/", "components/", "pipelines/")) for n in names)


def test_imports_come_from_the_installed_wheel(installed, tmp_path):
    code = (
        "import json, xdetox, xdetox.components, xdetox.pipelines, xdetox.cli.main;"
        "print(json.dumps([m.__file__ for m in "
        "(xdetox, xdetox.components, xdetox.pipelines, xdetox.cli.main)]))"
    )
    result = _run([sys.executable, "-c", code], installed, tmp_path)
    assert result.returncode == 0, result.stderr
    for file in json.loads(result.stdout):
        assert Path(file).is_relative_to(installed), file


def test_python_m_xdetox_compiles_a_shipped_recipe(installed, tmp_path):
    out = tmp_path / "xg.yaml"
    result = _run(
        [sys.executable, "-m", "xdetox", "compile", "-o", str(out),
         "--config", "xg-mgpt.yaml", "--config", "cluster/gke-a100.yaml"],
        installed, tmp_path,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    spec = next(yaml.safe_load_all(out.read_text(encoding="utf-8")))  # + platform spec
    assert spec["pipelineInfo"]["name"] == "xdetox-detox"
    # The recipe (package data) reached the compiled defaults: XG's 17 languages.
    languages = spec["root"]["inputDefinitions"]["parameters"]["languages"]["defaultValue"]
    assert len(languages) == 17


def test_the_script_and_python_m_run_a_stage(installed, tmp_path):
    scores = tmp_path / "scores.jsonl"
    rows = [
        {"model": "base", "prompt_id": p, "language": "en", "prompt": f"prompt {p}",
         "sample_index": i, "text": f"text {p} {i} words here", "scorer": "lexicon",
         "scores": {"TOXICITY": tox}}
        for p, values in enumerate([(0.9, 0.1), (0.2, 0.3)])
        for i, tox in enumerate(values)
    ]  # fmt: skip
    scores.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    script = installed / "bin" / "xdetox"
    for command in ([str(script)], [sys.executable, "-m", "xdetox"]):
        out = tmp_path / f"metrics-{len(command)}"
        result = _run(
            [*command, "metrics", "--scores", str(scores), "--output", str(out)],
            installed, tmp_path,
        )  # fmt: skip
        assert result.returncode == 0, result.stderr
        table = (out / "metrics.csv").read_text(encoding="utf-8")
        assert "en" in table and "base" in table
