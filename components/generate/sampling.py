"""Sampling protocols from the literature, and the seed each sample is drawn with.

No torch here: the CLI and the pipeline builder read the preset table without loading a model.
"""

from __future__ import annotations

import hashlib
from typing import Any

from xdetox.config import GenerationConfig, validate_section
from xdetox.config.generation import PROTOCOLS, SamplingProtocol
from xdetox.errors import ConfigError

__all__ = [
    "DEFAULT_PROTOCOL",
    "PROTOCOLS",
    "SamplingProtocol",
    "check_generation_config",
    "protocol_config",
    "sample_seed",
]

DEFAULT_PROTOCOL = "xg"


def check_generation_config(config: GenerationConfig, source: str = "generation") -> None:
    """Cross-field rules the pydantic section cannot express on its own.

    Temperature 0 means greedy decoding: every sample of a prompt would be the same text, so
    asking for more than one would only multiply identical rows (and bias the per-prompt
    maximum and distinct-n metrics). We refuse it rather than silently collapse ``n``.
    """
    if config.temperature == 0 and config.n != 1:
        raise ConfigError(
            f"{source}.n: temperature 0 is greedy decoding, so the {config.n} samples per prompt "
            "would be identical; set n to 1 or use a temperature > 0"
        )


def protocol_config(name: str, **overrides: Any) -> GenerationConfig:
    """The :class:`GenerationConfig` of a named protocol, with ``overrides`` applied on top.

    ``protocol_config("xg", seed=3, batch_size=128)``; unknown names raise a ConfigError listing
    the known ones, unknown or invalid overrides a ConfigError naming the key.
    """
    protocol = PROTOCOLS.get(name)
    if protocol is None:
        raise ConfigError(
            f"generation.protocol: unknown protocol {name!r} (known: {', '.join(PROTOCOLS)})"
        )
    values: dict[str, Any] = {
        "n": protocol.n,
        "temperature": protocol.temperature,
        "top_p": protocol.top_p,
        "max_new_tokens": protocol.max_new_tokens,
        **overrides,
    }
    config = validate_section(GenerationConfig, values, f"protocol {name!r}")
    check_generation_config(config, f"protocol {name!r}")
    return config


def sample_seed(seed: int, prompt_id: str, sample_index: int) -> int:
    """A 63-bit seed for one sample, stable across runs, machines and Python versions.

    sha256 rather than ``hash()``: Python salts string hashes per process. The model is not part
    of the key on purpose: the base and the detoxified model then draw the same random numbers
    for the same sample (common random numbers), which makes their comparison less noisy.
    """
    key = f"{seed}\x1f{prompt_id}\x1f{sample_index}".encode()
    return int.from_bytes(hashlib.sha256(key).digest()[:8], "big") >> 1
