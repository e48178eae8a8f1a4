# The offline image build the local bed and `make release` use (hack/build-images.sh runs it with
# `docker build -f hack/offline.Dockerfile`); the repository's own `Dockerfile` is the standard
# build for a machine with network access. Targets (one image each):
#   operator     workerpools/operator            the kopf operator
#   runtime      workerpools/worker-runtime      the shared worker runtime (CPU; OpenAI pack)
#   runtime-gpu  workerpools/worker-runtime-gpu  the runtime plus torch + transformers
# Nothing is downloaded inside a build: Python packages come from wheelhouses made on the host
# (build/wheelhouse/<target>, see hack/build-images.sh), the OS from BASE_IMAGE, which
# hack/build-base-image.sh makes with debootstrap. Every image runs as UID 10001, not root.
ARG BASE_IMAGE=workerpools/base:bookworm
# The wheelhouse folder in the context: build/wheelhouse-<arch> for another architecture.
ARG WHEELS=build/wheelhouse
# runtime-gpu starts from the `python` stage with its third-party packages (torch, transformers,
# the CUDA wheels: gigabytes) already in /opt/venv. hack/build-images.sh makes that image by
# running pip in the `python` stage's image with the wheelhouse mounted, not copied, so the wheels
# are never sent as build context nor left behind as a layer, and it is reused until the pinned
# package list or the stage changes.
ARG GPU_DEPS_IMAGE=workerpools/runtime-gpu-deps:unset

FROM ${BASE_IMAGE} AS python
# minbase has no useradd: write the account directly (UID/GID 10001, as the operator renders).
RUN echo 'app:x:10001:10001:workerpools:/home/app:/usr/sbin/nologin' >> /etc/passwd \
    && echo 'app:x:10001:' >> /etc/group \
    && mkdir -p /home/app /app && chown 10001:10001 /home/app \
    && python3 -m venv /opt/venv
ENV PATH=/opt/venv/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    HOME=/home/app

FROM python AS operator
ARG WHEELS
COPY ${WHEELS}/operator /tmp/wheels
RUN pip install -q --no-index --find-links /tmp/wheels 'temporal-workerpools[operator]' \
    && rm -rf /tmp/wheels
USER 10001:10001
EXPOSE 8080 8081
ENTRYPOINT ["workerpool-operator"]

FROM python AS runtime
ARG WHEELS
COPY ${WHEELS}/runtime /tmp/wheels
RUN pip install -q --no-index --find-links /tmp/wheels 'temporal-workerpools[openai,tracing]' \
    && rm -rf /tmp/wheels
# The examples the sample pools name (examples.three_queues, examples.gpu_llm_job). Your own
# code goes the same way: FROM workerpools/worker-runtime, COPY mypkg /app/mypkg.
COPY examples /app/examples
WORKDIR /app
ENV PYTHONPATH=/app
USER 10001:10001
EXPOSE 9090
ENTRYPOINT ["worker-runtime"]

FROM ${GPU_DEPS_IMAGE} AS runtime-gpu
# The runtime stage's layout, on the GPU packages' venv.
COPY examples /app/examples
WORKDIR /app
ENV PYTHONPATH=/app
EXPOSE 9090
ENTRYPOINT ["worker-runtime"]
# Only the project wheel is here: with --no-index, a dependency missing from the venv fails the
# build instead of being fetched.
COPY build/wheelhouse/runtime-gpu /tmp/wheels
RUN pip install -q --no-index --find-links /tmp/wheels 'temporal-workerpools[openai,llm,tracing]' \
    && rm -rf /tmp/wheels
# Pods run with a read-only root filesystem and /tmp as their only scratch space; weights come
# from a mounted volume (TWP_LLM_MODEL_PATH), never from a hub at run time.
ENV HF_HOME=/tmp/huggingface HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1
USER 10001:10001
