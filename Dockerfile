# The standard build of the project's images, for any machine with network access:
#   docker build --target operator    -t workerpools/operator .
#   docker build --target runtime     -t workerpools/worker-runtime .
#   docker build --target runtime-gpu -t workerpools/worker-runtime-gpu .
# Python packages come from PyPI, the OS from the official python image. The local test bed has
# no registry to pull that image from, so it and `make release` build the same three images
# offline instead (hack/offline.Dockerfile, run by hack/build-images.sh; docs/runtime.md says
# which is which). Both give the same layout: a venv in /opt/venv, the code in /app, UID 10001.
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

# The project wheel, built once from the sources; each image installs it with its extras.
FROM base AS wheel
WORKDIR /src
COPY pyproject.toml README.md ./
COPY operator operator
COPY worker_runtime worker_runtime
RUN pip wheel -q --no-deps -w /wheels .

FROM base AS operator-venv
COPY --from=wheel /wheels /wheels
RUN python -m venv /opt/venv && pip install -q --find-links /wheels 'temporal-workerpools[operator]'

FROM base AS runtime-venv
COPY --from=wheel /wheels /wheels
RUN python -m venv /opt/venv && pip install -q --find-links /wheels 'temporal-workerpools[openai,tracing]'

FROM base AS runtime-gpu-venv
COPY --from=wheel /wheels /wheels
RUN python -m venv /opt/venv \
    && pip install -q --find-links /wheels 'temporal-workerpools[openai,llm,tracing]'

FROM base AS operator
COPY --from=operator-venv /opt/venv /opt/venv
USER 10001:10001
EXPOSE 8080 8081
ENTRYPOINT ["workerpool-operator"]

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

FROM runtime AS runtime-gpu
COPY --from=runtime-gpu-venv /opt/venv /opt/venv
# Pods run with a read-only root filesystem and /tmp as their only scratch space; weights come
# from a mounted volume (TWP_LLM_MODEL_PATH), never from a hub at run time.
ENV HF_HOME=/tmp/huggingface HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1
