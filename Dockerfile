# The standard build of the project's images, for any machine with network access:
#   docker build --target operator    -t workerpools/operator .
#   docker build --target runtime     -t workerpools/worker-runtime .
#   docker build --target runtime-gpu -t workerpools/worker-runtime-gpu .
# Python packages come from PyPI, the OS from the official python image. The local test bed has
# no registry to pull that image from, so it and `make release` build the same three images
# offline instead (hack/offline.Dockerfile, run by hack/build-images.sh; docs/runtime.md says
# which is which). Both give the same layout: a venv in /opt/venv, the code in /app, UID 10001.
# PYTHON_IMAGE may be any Debian-like image with python3 and its venv module (the official one,
# or the bed's debootstrap base: tests/runtime/test_dockerfile.py builds it so). Packages come
# from PyPI unless the pip settings below say otherwise: a mirror or private index
# (--build-arg PIP_INDEX_URL=...), or a wheelhouse served over HTTP (PIP_NO_INDEX=1
# PIP_FIND_LINKS=http://...).
ARG PYTHON_IMAGE=python:3.11-slim-bookworm

FROM ${PYTHON_IMAGE} AS base
RUN echo 'app:x:10001:10001:workerpools:/home/app:/usr/sbin/nologin' >> /etc/passwd \
    && echo 'app:x:10001:' >> /etc/group \
    && mkdir -p /home/app /app && chown 10001:10001 /home/app
ENV PATH=/opt/venv/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    HOME=/home/app

# Each image's stages follow its venv stage: Docker's legacy builder (no BuildKit) runs every
# stage before the target, so `--target operator` then installs no runtime packages.
# The project wheel, built once from the sources; each image installs it (by path, so the pip
# settings alone say where its dependencies come from) with its extras.
FROM base AS wheel
ARG PIP_INDEX_URL
ARG PIP_FIND_LINKS
ARG PIP_NO_INDEX
WORKDIR /src
COPY pyproject.toml README.md ./
COPY operator operator
COPY worker_runtime worker_runtime
RUN python3 -m venv /opt/build && /opt/build/bin/pip wheel -q --no-deps -w /wheels .

FROM base AS operator-venv
ARG PIP_INDEX_URL
ARG PIP_FIND_LINKS
ARG PIP_NO_INDEX
COPY --from=wheel /wheels /wheels
RUN python3 -m venv /opt/venv && w=$(echo /wheels/*.whl) && pip install -q "$w[operator]"

FROM base AS operator
COPY --from=operator-venv /opt/venv /opt/venv
USER 10001:10001
EXPOSE 8080 8081
ENTRYPOINT ["workerpool-operator"]

FROM base AS runtime-venv
ARG PIP_INDEX_URL
ARG PIP_FIND_LINKS
ARG PIP_NO_INDEX
COPY --from=wheel /wheels /wheels
RUN python3 -m venv /opt/venv && w=$(echo /wheels/*.whl) && pip install -q "$w[openai,tracing]"

FROM base AS runtime
COPY --from=runtime-venv /opt/venv /opt/venv
# The examples the sample pools name; your own code goes the same way:
# FROM workerpools/worker-runtime, COPY mypkg /app/mypkg.
COPY examples /app/examples
WORKDIR /app
ENV PYTHONPATH=/app
USER 10001:10001
EXPOSE 9090
ENTRYPOINT ["worker-runtime"]

FROM base AS runtime-gpu-venv
ARG PIP_INDEX_URL
ARG PIP_FIND_LINKS
ARG PIP_NO_INDEX
COPY --from=wheel /wheels /wheels
RUN python3 -m venv /opt/venv && w=$(echo /wheels/*.whl) \
    && pip install -q "$w[openai,llm,tracing]"

FROM runtime AS runtime-gpu
COPY --from=runtime-gpu-venv /opt/venv /opt/venv
# Pods run with a read-only root filesystem and /tmp as their only scratch space; weights come
# from a mounted volume (TWP_LLM_MODEL_PATH), never from a hub at run time.
ENV HF_HOME=/tmp/huggingface HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1
