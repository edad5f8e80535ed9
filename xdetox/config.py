"""Typed configuration: YAML recipes, merged in order, with ``--set key=value`` overrides.

Hyperparameters (``data``, ``training``, ``generation``, ``scoring``, ``metrics``) are kept apart
from infrastructure (``cluster``), as in torchtune and the alignment-handbook, so a recipe can be
combined with any cluster file: ``--config recipe.yaml --config cluster.yaml``.

Every error names the file and the dotted key at fault, in one line.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from xdetox.errors import ConfigError

CONFIG_DIR = Path(__file__).resolve().parent.parent / "pipelines" / "configs"
DEFAULT_CONFIG = CONFIG_DIR / "toy.yaml"

XG_LANGUAGES = [
    "ar",
    "cs",
    "de",
    "en",
    "es",
    "fr",
    "hi",
    "id",
    "it",
    "ja",
    "ko",
    "nl",
    "pl",
    "pt",
    "ru",
    "sv",
    "zh-hans",
]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class ModelConfig(_Strict):
    # "toy" (built by the package), a local folder, gs://bucket/prefix, or a Hugging Face id.
    base: str = "toy"


class LengthFilter(_Strict):
    # Tokens by default: the reference counted characters, which keeps different amounts of text
    # for scripts with different characters per token. "chars" reproduces the reference.
    unit: Literal["tokens", "chars"] = "tokens"
    max_length: int = Field(256, gt=0)


class DataConfig(_Strict):
    preference: str = "toy"  # toxicity_pairwise folder/file, gs:// prefix, or "toy"
    prompts: str = "toy"  # prompts file/folder, gs:// prefix, or "toy"
    languages: list[str] = Field(default_factory=lambda: list(XG_LANGUAGES), min_length=1)
    max_prompts_per_language: int | None = Field(None, gt=0)
    max_pairs: int | None = Field(None, gt=0)
    eval_fraction: float = Field(0.05, ge=0.0, lt=1.0)
    length_filter: LengthFilter = Field(default_factory=LengthFilter)
    seed: int = 0


class LoraConfig(_Strict):
    r: int = Field(64, gt=0)
    alpha: int = Field(16, gt=0)
    dropout: float = Field(0.05, ge=0.0, lt=1.0)
    # "auto" picks the preset for the model's architecture (components/dpo/lora_targets.py).
    target_modules: list[str] | Literal["auto"] = "auto"


class TrainingConfig(_Strict):
    """DPO hyperparameters. Defaults are the XG paper's recipe (REFERENCE.md §3)."""

    method: Literal["dpo"] = "dpo"
    beta: float = Field(0.1, gt=0.0)
    learning_rate: float = Field(1e-5, gt=0.0)
    lr_scheduler_type: str = "constant_with_warmup"
    warmup_steps: int = Field(150, ge=0)
    optim: str = "rmsprop"
    max_grad_norm: float = Field(10.0, gt=0.0)
    per_device_train_batch_size: int = Field(4, gt=0)
    gradient_accumulation_steps: int = Field(1, gt=0)
    num_train_epochs: float = Field(5.0, gt=0.0)
    max_steps: int = -1
    max_prompt_length: int = Field(64, gt=0)
    max_length: int = Field(256, gt=0)
    eval_steps: int = Field(25, gt=0)
    save_steps: int = Field(25, gt=0)
    logging_steps: int = Field(5, gt=0)
    early_stopping_patience: int = Field(10, ge=0)  # 0 turns early stopping off
    gradient_checkpointing: bool = True
    seed: int = 0
    # lora: adapters on a frozen base; full: every weight (XG's mGPT and BLOOM-1.7B runs).
    mode: Literal["lora", "full"] = "lora"
    lora: LoraConfig = Field(default_factory=LoraConfig)


class GenerationConfig(_Strict):
    """Sampling protocol. Defaults are XG's: 25 samples, T 0.9, top-p 0.8, 20 new tokens."""

    n: int = Field(25, gt=0)
    temperature: float = Field(0.9, ge=0.0)
    top_p: float = Field(0.8, gt=0.0, le=1.0)
    max_new_tokens: int = Field(20, gt=0)
    seed: int = 0
    batch_size: int = Field(64, gt=0)  # sequences per forward pass (transformers backend)


class ScoringConfig(_Strict):
    scorer: Literal["offline"] = "offline"
    attributes: list[str] = Field(
        default_factory=lambda: [
            "TOXICITY",
            "SEVERE_TOXICITY",
            "IDENTITY_ATTACK",
            "INSULT",
            "PROFANITY",
            "THREAT",
        ]
    )


class MetricsConfig(_Strict):
    threshold: float = Field(0.5, ge=0.0, le=1.0)
    # Conditional perplexity of each continuation given its prompt under the base model.
    perplexity: bool = True
    max_perplexity: float = Field(1e4, gt=0.0)  # XG drops ppl >= 1e4 as degenerate
    # Tokenizer for distinct-n: "model" (the base model's), "whitespace", or a tokenizer path/id.
    diversity_tokenizer: str = "model"


class ResourceConfig(_Strict):
    """What one stage asks of the cluster. Ignored by KFP's local runner."""

    cpu: str | None = None
    memory: str | None = None
    gpu: int = Field(0, ge=0)
    gpu_type: str | None = None  # e.g. nvidia-tesla-a100 (GKE accelerator label value)
    node_selector: dict[str, str] = Field(default_factory=dict)
    shm: str | None = None  # size of a memory-backed /dev/shm, e.g. "16Gi"
    timeout_seconds: int | None = Field(None, gt=0)
    retries: int = Field(0, ge=0)


STAGES = (
    "load_model",
    "prepare_data",
    "prepare_prompts",
    "dpo",
    "merge",
    "generate",
    "score",
    "metrics",
    "report",
)


class ClusterConfig(_Strict):
    parallelism: int = Field(4, gt=0)  # languages processed at once
    pipeline_root: str | None = None  # e.g. gs://bucket/xdetox
    resources: dict[Literal[STAGES], ResourceConfig] = Field(default_factory=dict)  # type: ignore[valid-type]


class Config(_Strict):
    name: str = "xdetox"
    model: ModelConfig = Field(default_factory=ModelConfig)
    data: DataConfig = Field(default_factory=DataConfig)
    training: TrainingConfig = Field(default_factory=TrainingConfig)
    generation: GenerationConfig = Field(default_factory=GenerationConfig)
    scoring: ScoringConfig = Field(default_factory=ScoringConfig)
    metrics: MetricsConfig = Field(default_factory=MetricsConfig)
    cluster: ClusterConfig = Field(default_factory=ClusterConfig)


def _format_validation_error(exc: ValidationError, source: str) -> str:
    first = exc.errors()[0]
    key = ".".join(str(p) for p in first["loc"]) or "<root>"
    msg = first["msg"]
    if first["type"] == "extra_forbidden":
        msg = "unknown key"
    more = f" (and {len(exc.errors()) - 1} more)" if len(exc.errors()) > 1 else ""
    return f"{source}: {key}: {msg}{more}"


def to_params(section: BaseModel) -> dict:
    """A config section as a KFP pipeline parameter (a Struct, which cannot hold nulls).

    Dropping ``None`` is lossless because every optional field defaults to ``None``;
    a test checks the round trip for every shipped recipe.
    """
    return section.model_dump(exclude_none=True)


def validate_section(model: type[BaseModel], data: Any, source: str) -> Any:
    """Validate one config section (e.g. the ``training`` dict a component receives)."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(_format_validation_error(exc, source)) from None


def _deep_merge(base: dict, update: dict) -> dict:
    out = copy.deepcopy(base)
    for key, value in update.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _deep_merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def _read_yaml(path: Path) -> dict:
    if not path.is_file():
        raise ConfigError(f"{path}: config file not found")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{path}:{mark.line + 1}" if mark else str(path)
        raise ConfigError(f"{where}: not valid YAML ({getattr(exc, 'problem', exc)})") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping at the top level")
    return data


def parse_override(item: str) -> tuple[list[str], Any]:
    """``training.beta=0.2`` → (["training", "beta"], 0.2); the value is parsed as YAML."""
    if "=" not in item:
        raise ConfigError(f"--set {item!r}: expected key=value")
    key, raw = item.split("=", 1)
    parts = [p for p in key.strip().split(".") if p]
    if not parts:
        raise ConfigError(f"--set {item!r}: empty key")
    try:
        value = yaml.safe_load(raw) if raw.strip() else ""
    except yaml.YAMLError:
        value = raw
    return parts, value


def apply_overrides(data: dict, overrides: list[str]) -> dict:
    out = copy.deepcopy(data)
    for item in overrides:
        parts, value = parse_override(item)
        node = out
        for part in parts[:-1]:
            child = node.get(part)
            if child is None:
                child = node[part] = {}
            if not isinstance(child, dict):
                raise ConfigError(f"--set {item!r}: {part} is not a section")
            node = child
        node[parts[-1]] = value
    return out


def load_config(
    paths: list[str | Path] | None = None, overrides: list[str] | None = None
) -> Config:
    """Merge YAML files in order (the embedded toy recipe when none), apply overrides, validate."""
    files = [Path(p) for p in (paths or [DEFAULT_CONFIG])]
    merged: dict = {}
    for path in files:
        merged = _deep_merge(merged, _read_yaml(path))
    merged = apply_overrides(merged, overrides or [])
    source = ", ".join(str(p) for p in files) + (" + --set" if overrides else "")
    return validate_section(Config, merged, source)
