"""Apply a stage's cluster settings to a KFP task at compile time.

KFP's local runner ignores Kubernetes-only settings, so the same pipeline function runs on a
laptop and compiles for a GKE cluster with GPU node pools. Which image a stage runs in, and
what it asks for when the cluster file says nothing, is the table in
:mod:`xdetox.components.images`; this module checks the cluster file against it.
"""

from __future__ import annotations

from kfp import kubernetes
from kfp.dsl import PipelineTask

from xdetox.components.images import STAGES
from xdetox.config import ClusterConfig, ResourceConfig
from xdetox.errors import ConfigError

GKE_ACCELERATOR_LABEL = "cloud.google.com/gke-accelerator"


def stage_resources(cluster: ClusterConfig, stage: str) -> ResourceConfig:
    """The stage's default resources with the cluster file's entry laid over them."""
    default = STAGES[stage].resources
    given = cluster.resources.get(stage)
    if given is None:
        return default
    return default.model_copy(update={k: getattr(given, k) for k in given.model_fields_set})


def check_cluster_stages(cluster: ClusterConfig) -> None:
    """Refuse a GPU request on a stage whose image has no CUDA (one line naming the stage)."""
    for stage in cluster.resources:
        res = stage_resources(cluster, stage)
        if res.gpu and not STAGES[stage].cuda:
            raise ConfigError(
                f"cluster.resources.{stage}.gpu: stage {stage!r} runs in the CPU image "
                f"{STAGES[stage].image}, which cannot use a GPU; remove the GPU request"
            )


def _task_image(task: PipelineTask) -> str | None:
    container = task.component_spec.implementation.container
    return None if container is None else container.image


def apply_resources(task: PipelineTask, stage: str, cluster: ClusterConfig) -> PipelineTask:
    """Set CPU/memory, GPUs, node selector, tolerations, /dev/shm, timeout and retries."""
    res = stage_resources(cluster, stage)
    if res.cpu:
        task.set_cpu_request(res.cpu).set_cpu_limit(res.cpu)
    if res.memory:
        task.set_memory_request(res.memory).set_memory_limit(res.memory)
    if res.gpu:
        task.set_accelerator_type("nvidia.com/gpu").set_accelerator_limit(res.gpu)
        # GKE taints GPU nodes; without the toleration the pod never schedules there.
        kubernetes.add_toleration(
            task, key="nvidia.com/gpu", operator="Exists", effect="NoSchedule"
        )
        if res.gpu_type:
            kubernetes.add_node_selector(task, GKE_ACCELERATOR_LABEL, res.gpu_type)
    for key, value in res.node_selector.items():
        kubernetes.add_node_selector(task, key, value)
    if res.shm:
        # NCCL and dataloader workers need more shared memory than a pod's 64 MiB default.
        kubernetes.empty_dir_mount(
            task, volume_name="dshm", mount_path="/dev/shm", medium="Memory", size_limit=res.shm
        )
    if res.timeout_seconds:
        kubernetes.set_timeout(task, res.timeout_seconds)
    if res.retries:
        task.set_retry(num_retries=res.retries, backoff_duration="60s", backoff_factor=2.0)
    for secret in cluster.secrets:
        if stage in secret.stages:
            kubernetes.use_secret_as_env(
                task, secret.secret, {secret.key: secret.env}, optional=secret.optional
            )
    return task


def task_configurer(cluster: ClusterConfig, uncached: set[str]):
    """``configure(task, stage, name)`` for a pipeline: display name, caching, cluster settings.

    Every pipeline (detox, eval, interpret) and the sub-pipelines they share name their tasks,
    cache the deterministic ones and apply the stage's resources the same way; this is that one
    way. The cluster file is checked against the stage table once, when the pipeline is built.
    """
    check_cluster_stages(cluster)

    def configure(task: PipelineTask, stage: str, name: str) -> PipelineTask:
        image = _task_image(task)
        if image != STAGES[stage].image:  # a component whose base_image is not its stage's
            raise ValueError(f"task {name!r}: image {image} is not stage {stage!r}'s")
        task.set_display_name(name)
        task.set_caching_options(stage not in uncached)
        return apply_resources(task, stage, cluster)

    return configure
