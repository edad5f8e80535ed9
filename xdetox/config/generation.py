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

    tensor_parallel_size: int | None = Field(
        None, gt=0, description="GPUs the model is split over; None: every visible GPU"
    )
    gpu_memory_utilization: float | None = Field(
        None, gt=0.0, le=1.0, description="share of GPU memory vLLM takes; None: 0.9 (CPU: 0.2)"
    )
    dtype: str = Field("auto", description="weights' dtype (vLLM's dtype argument)")
    enforce_eager: bool | None = Field(
        None, description="no CUDA graphs; None: vLLM's choice for the machine"
    )
    max_model_len: int | None = Field(
        None, gt=0, description="context length vLLM reserves; None: the model's"
    )


class GenerationConfig(_Strict):
    """Sampling protocol. Defaults are XG's: 25 samples, T 0.9, top-p 0.8, 20 new tokens.

    ``protocol`` (xg | rtp | helm | greedy) fills n, temperature, top_p and max_new_tokens
    for the keys the same config does not set; every value stays overridable.
    """

    protocol: Literal["xg", "rtp", "helm", "greedy"] | None = Field(
        None,
        description="sampling preset: xg (Li, Yong & Bach 2024), rtp (Gehman et al. 2020), helm, "
        "greedy; fills n, temperature, top_p and max_new_tokens where they are not set",
    )
    n: int = Field(25, gt=0, description="samples per prompt")
    temperature: float = Field(0.9, ge=0.0, description="sampling temperature; 0 is greedy")
    top_p: float = Field(0.8, gt=0.0, le=1.0, description="nucleus sampling mass")
    max_new_tokens: int = Field(20, gt=0, description="new tokens per sample")
    seed: int = Field(0, description="sampling seed (each prompt's samples are seeded from it)")
    backend: Literal["auto", "vllm", "hf"] = Field(
        "auto",
        description="auto: vLLM when a GPU is visible and vllm is installed, else hf "
        "(transformers)",
    )
    batch_size: int = Field(64, gt=0, description="sequences per forward pass (hf backend)")
    shard_size: int = Field(64, gt=0, description="prompts per resumable shard")
    vllm: VLLMConfig = Field(default_factory=VLLMConfig)

    @model_validator(mode="before")
    @classmethod
    def _fill_from_protocol(cls, data: Any) -> Any:
        if isinstance(data, dict) and data.get("protocol") in PROTOCOLS:
            data = {**protocol_values(data["protocol"]), **data}
        return data
