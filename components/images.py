"""The container images the components name. One constant per image, tagged with the version.

On a cluster the image supplies the code (``install_kfp_package=False``); KFP's local runner
ignores ``base_image`` and runs the function in this interpreter. ``docker/`` builds all three.
Set ``XDETOX_REGISTRY`` at compile time to use your own registry (e.g. Artifact Registry).
"""

from __future__ import annotations

import os

from xdetox import __version__

REGISTRY = os.environ.get("XDETOX_REGISTRY", "ghcr.io/xdetox").rstrip("/")
# CPU image: the package and its CPU dependencies (data prep, scoring, metrics, report).
BASE_IMAGE = f"{REGISTRY}/xdetox:{__version__}"
# CUDA image for training and merging: torch, DeepSpeed, TRL, PEFT, bitsandbytes.
TRAIN_IMAGE = f"{REGISTRY}/xdetox-train:{__version__}"
# CUDA image for generation: vLLM (plus the transformers backend).
GENERATE_IMAGE = f"{REGISTRY}/xdetox-vllm:{__version__}"
