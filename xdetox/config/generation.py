"""The sampling protocol used to generate continuations, and the backend that runs it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from pydantic import Field, model_validator

from xdetox.config.base import _Strict


@dataclass(frozen=True)
class SamplingProtocol:
    """A named way of sampling continuations, with where it comes from."""

    name: str
    n: int
    temperature: float
    top_p: float
    max_new_tokens: int
    source: str


PROTOCOLS: dict[str, SamplingProtocol] = {
    p.name: p
    for p in (
        SamplingProtocol("xg", 25, 0.9, 0.8, 20, "Li, Yong & Bach 2024 (XG), vLLM"),
        SamplingProtocol("rtp", 25, 1.0, 0.9, 20, "RealToxicityPrompts (Gehman et al. 2020)"),
        SamplingProtocol("helm", 5, 0.9, 1.0, 20, "HELM toxicity scenario"),
        SamplingProtocol("greedy", 1, 0.0, 1.0, 20, "lm-evaluation-harness: greedy, 1 sample"),
    )
}
PROTOCOL_KEYS = ("n", "temperature", "top_p", "max_new_tokens")


def protocol_values(name: str) -> dict[str, Any]:
    protocol = PROTOCOLS[name]
    return {key: getattr(protocol, key) for key in PROTOCOL_KEYS}


class VLLMConfig(_Strict):
    """vLLM engine settings; unset values are decided from the machine at run time."""

    tensor_parallel_size: int | None = Field(None, gt=0)  # default: every visible GPU
    gpu_memory_utilization: float | None = Field(None, gt=0.0, le=1.0)  # 0.9 GPU, 0.2 CPU RAM
    dtype: str = "auto"
    enforce_eager: bool | None = None
    max_model_len: int | None = Field(None, gt=0)


class GenerationConfig(_Strict):
    """Sampling protocol. Defaults are XG's: 25 samples, T 0.9, top-p 0.8, 20 new tokens.

    ``protocol`` (xg | rtp | helm | greedy) fills n, temperature, top_p and max_new_tokens
    for the keys the same config does not set; every value stays overridable.
    """

    protocol: Literal["xg", "rtp", "helm", "greedy"] | None = None
    n: int = Field(25, gt=0)
    temperature: float = Field(0.9, ge=0.0)
    top_p: float = Field(0.8, gt=0.0, le=1.0)
    max_new_tokens: int = Field(20, gt=0)
    seed: int = 0
    # auto: vLLM when a GPU is visible and vllm is installed, else transformers.
    backend: Literal["auto", "vllm", "hf"] = "auto"
    batch_size: int = Field(64, gt=0)  # sequences per forward pass (transformers backend)
    shard_size: int = Field(64, gt=0)  # prompts per resumable shard
    vllm: VLLMConfig = Field(default_factory=VLLMConfig)

    @model_validator(mode="before")
    @classmethod
    def _fill_from_protocol(cls, data: Any) -> Any:
        if isinstance(data, dict) and data.get("protocol") in PROTOCOLS:
            data = {**protocol_values(data["protocol"]), **data}
        return data
