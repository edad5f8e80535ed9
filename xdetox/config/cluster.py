"""Infrastructure: what each stage asks of a Kubeflow cluster. Ignored by the local runner."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from xdetox.config.base import _Strict


class ResourceConfig(_Strict):
    """What one stage asks of the cluster. Ignored by KFP's local runner."""

    cpu: str | None = Field(None, description='CPU request and limit, e.g. "8"')
    memory: str | None = Field(None, description='memory request and limit, e.g. "32Gi"')
    gpu: int = Field(0, ge=0, description="GPUs (accelerator limit)")
    gpu_type: str | None = Field(
        None, description="accelerator, e.g. nvidia-tesla-a100 (GKE accelerator label value)"
    )
    node_selector: dict[str, str] = Field(
        default_factory=dict, description="node labels the pod must run on"
    )
    shm: str | None = Field(
        None, description='size of a memory-backed /dev/shm, e.g. "16Gi"'
    )
    timeout_seconds: int | None = Field(None, gt=0, description="the task's time limit")
    retries: int = Field(0, ge=0, description="retries of a failed task (e.g. preemption)")


# The stages a cluster file can configure. Each runs in one image, listed with its default
# resources in xdetox.components.images.STAGES (a GPU only where that image has CUDA).
STAGES = (
    "load_model",
    "prepare_data",
    "self_pairs",  # data.preference: self (samples the base model, scores the samples)
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

    secret: str = Field(
        description="Kubernetes Secret name, e.g. perspective-api-key "
        "(k8s/base/secrets.template.yaml)"
    )
    key: str = Field(description="key inside the secret")
    env: str = Field(description="environment variable in the container")
    stages: list[Literal[STAGES]] = Field(  # type: ignore[valid-type]
        min_length=1, description="stages whose pods get the variable"
    )
    # e.g. the offline scorer never reads PERSPECTIVE_API_KEY.
    optional: bool = Field(
        True,
        description="a pod starts without it, and the code that needs it says so in one line",
    )


class ClusterConfig(_Strict):
    parallelism: int = Field(4, gt=0, description="languages processed at once")
    pipeline_root: str | None = Field(
        None, description="where artifacts are stored, e.g. gs://bucket/xdetox"
    )
    resources: dict[Literal[STAGES], ResourceConfig] = Field(  # type: ignore[valid-type]
        default_factory=dict, description="what each stage asks of the cluster"
    )
    secrets: list[SecretEnv] = Field(
        default_factory=list, description="environment variables filled from secrets"
    )
