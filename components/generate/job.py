"""One generation task (prompts in, generations out) as data that can cross a process boundary.

The vLLM backend runs in a child process (see ``vllm_worker``): the parent writes its jobs as
JSON, the child reads them back. Several jobs for one model share one engine load.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from xdetox.components.generate.shards import DEFAULT_SHARD_SIZE
from xdetox.config import GenerationConfig, validate_section
from xdetox.errors import ConfigError


@dataclass(frozen=True)
class GenerationJob:
    """Generate ``config.n`` samples per prompt of ``prompts_path`` (one language, or all)."""

    prompts_path: Path
    output_path: Path
    model_label: str
    config: GenerationConfig
    language: str | None = None
    shard_size: int = DEFAULT_SHARD_SIZE
    shard_dir: Path | None = None

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["config"] = self.config.model_dump()
        for key in ("prompts_path", "output_path", "shard_dir"):
            data[key] = None if data[key] is None else str(data[key])
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any], source: str = "job") -> GenerationJob:
        missing = {"prompts_path", "output_path", "model_label", "config"} - set(data)
        if missing:
            raise ConfigError(f"{source}: missing key(s) {', '.join(sorted(missing))}")
        config = validate_section(GenerationConfig, data["config"], f"{source}.config")
        shard_dir = data.get("shard_dir")
        return cls(
            prompts_path=Path(data["prompts_path"]),
            output_path=Path(data["output_path"]),
            model_label=str(data["model_label"]),
            config=config,
            language=data.get("language"),
            shard_size=int(data.get("shard_size", DEFAULT_SHARD_SIZE)),
            shard_dir=None if shard_dir is None else Path(shard_dir),
        )
