"""Infrastructure: what each stage asks of a Kubeflow cluster. Ignored by the local runner."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from xdetox.config.base import _Strict


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
    "merge",
    "generate",
    "score",
    "metrics",
    "report",
    "train",  # the generic training stage (dpo | sft_dpo | ppo | rloo | grpo)
    "compare",  # eval pipeline: comparison with a baseline
    "agreement",
    "probe",
    "value_vectors",
    "intervene",
    "activations",
    "alignment",
    "interpret_report",
)


class SecretEnv(_Strict):
    """An environment variable filled from a Kubernetes secret on the stages that need it.

    The value never enters a parameter or the compiled YAML: only the secret's name and key do.
    """

    secret: str  # Kubernetes Secret name, e.g. perspective-api-key (k8s/base/secrets.template.yaml)
    key: str  # key inside the secret
    env: str  # environment variable in the container
    stages: list[Literal[STAGES]] = Field(min_length=1)  # type: ignore[valid-type]
    # Optional: a pod starts without it, and the code that needs it says so in one line
    # (e.g. the offline scorer never reads PERSPECTIVE_API_KEY).
    optional: bool = True


class ClusterConfig(_Strict):
    parallelism: int = Field(4, gt=0)  # languages processed at once
    pipeline_root: str | None = None  # e.g. gs://bucket/xdetox
    resources: dict[Literal[STAGES], ResourceConfig] = Field(default_factory=dict)  # type: ignore[valid-type]
    secrets: list[SecretEnv] = Field(default_factory=list)
