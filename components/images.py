"""The container images the components name, and which stage runs in which image.

One constant per image, tagged with the package version. On a cluster the image supplies the
code (``install_kfp_package=False``); KFP's local runner ignores ``base_image`` and runs the
function in this interpreter. ``docker/`` builds all three. Set ``XDETOX_REGISTRY`` at compile
time to use your own registry (e.g. Artifact Registry).

:data:`STAGES` is the one table of stage → image → default resources: every component's
``base_image`` comes from it, and a cluster file's GPU request on a stage whose image has no
CUDA is refused at compile time (``xdetox.pipelines.resources.check_cluster_stages``). A GPU
asked of the CPU image would be paid for and never used: that image carries CPU-only torch.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

from xdetox import __version__
from xdetox.config.cluster import STAGES as STAGE_NAMES
from xdetox.config.cluster import ResourceConfig

REGISTRY = os.environ.get("XDETOX_REGISTRY", "ghcr.io/xdetox").rstrip("/")
# CPU image: the package and its CPU dependencies (data prep, scoring, report).
BASE_IMAGE = f"{REGISTRY}/xdetox:{__version__}"
# CUDA image for training, merging and every stage that runs a model forward pass outside
# generation: torch, DeepSpeed, TRL, PEFT, bitsandbytes.
TRAIN_IMAGE = f"{REGISTRY}/xdetox-train:{__version__}"
# CUDA image for generation: vLLM (plus the transformers backend).
GENERATE_IMAGE = f"{REGISTRY}/xdetox-vllm:{__version__}"
# The images built on CUDA (docker/train.Dockerfile, docker/vllm.Dockerfile).
CUDA_IMAGES = frozenset({TRAIN_IMAGE, GENERATE_IMAGE})


@dataclass(frozen=True)
class Stage:
    """Where one stage runs and what it asks of a cluster when the cluster file says nothing.

    The defaults ask for nothing: a compile without a cluster file must schedule on any
    cluster, and a memory limit too small for the recipe's model would kill the pod. A cluster
    file's entry for the stage is laid over these defaults field by field.
    """

    image: str
    resources: ResourceConfig = field(default_factory=ResourceConfig)

    @property
    def cuda(self) -> bool:
        return self.image in CUDA_IMAGES


STAGES: dict[str, Stage] = {
    "load_model": Stage(BASE_IMAGE),
    "prepare_data": Stage(BASE_IMAGE),  # tokenizer only (length filter)
    # data.preference: self samples the base model (vLLM or transformers), then scores.
    "self_pairs": Stage(GENERATE_IMAGE),
    "prepare_prompts": Stage(BASE_IMAGE),
    "train": Stage(TRAIN_IMAGE),
    "merge": Stage(TRAIN_IMAGE),
    "generate": Stage(GENERATE_IMAGE),
    "score": Stage(BASE_IMAGE),
    # Perplexity runs the base model (or mT5-XL for xg-seq2seq) over every sample: on a 7B
    # model that wants a GPU, so metrics runs in the CUDA image and may ask for one.
    "metrics": Stage(TRAIN_IMAGE),
    "report": Stage(BASE_IMAGE),
    "compare": Stage(BASE_IMAGE),
    "agreement": Stage(BASE_IMAGE),
    "probe": Stage(TRAIN_IMAGE),
    "value_vectors": Stage(TRAIN_IMAGE),
    "intervene": Stage(TRAIN_IMAGE),
    "activations": Stage(TRAIN_IMAGE),
    "alignment": Stage(TRAIN_IMAGE),
    "interpret_report": Stage(BASE_IMAGE),  # also joins the per-language sweeps
}

# The config's stage names (the keys of cluster.resources) and this table must agree.
if set(STAGES) != set(STAGE_NAMES):
    raise ImportError(f"stages without an image or a config name: {set(STAGES) ^ set(STAGE_NAMES)}")


def stage_image(stage: str) -> str:
    """The image ``stage`` runs in (the components' ``base_image``)."""
    return STAGES[stage].image
