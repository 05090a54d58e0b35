# syntax=docker/dockerfile:1
# The fedledger chaincode as a service (python -m fedledger_chaincode), one container per
# peer. No torch: only the chaincode's own dependencies, with the version ranges
# pyproject.toml gives them (deploy/docker/requirements.py selects them), and the
# fedledger distribution without its dependencies (the chaincode imports
# fedledger.canonical, which is stdlib only).
ARG PYTHON_IMAGE=python:3.11.7-slim-bookworm

FROM ${PYTHON_IMAGE} AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH
WORKDIR /src
COPY pyproject.toml README.md ./
COPY deploy/docker/requirements.py deploy/docker/requirements.py
RUN python deploy/docker/requirements.py chaincode > /tmp/requirements.txt \
    && pip install -r /tmp/requirements.txt
COPY contracts/artifacts contracts/artifacts
COPY chaincode chaincode
COPY services services
RUN pip install --no-deps . && python -c "import fedledger_chaincode.app"

FROM ${PYTHON_IMAGE}
RUN groupadd --system --gid 10001 chaincode \
    && useradd --system --uid 10001 --gid chaincode --no-create-home --shell /usr/sbin/nologin chaincode
COPY --from=build /opt/venv /opt/venv
COPY deploy/scripts/chaincode-entrypoint.sh /usr/local/bin/chaincode-entrypoint.sh
ENV PATH=/opt/venv/bin:$PATH PYTHONUNBUFFERED=1 PYTHONDONTWRITEBYTECODE=1
USER chaincode
EXPOSE 9999
ENTRYPOINT ["bash", "/usr/local/bin/chaincode-entrypoint.sh"]
