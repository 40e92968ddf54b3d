# syntax=docker/dockerfile:1
# The one finsentry image: crawlers, stream workers, alerts and the one-shot `topics` init service
# all run it with a different command (see docker-compose.yml).
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

# torch first, from the CPU-only index: the project's unpinned `torch>=2.4` would otherwise pull
# the multi-GB CUDA build from PyPI. Its own layer, so code changes do not re-download it.
RUN pip install --index-url https://download.pytorch.org/whl/cpu torch==2.13.0

# An unprivileged user; the state folder exists (owned by it) so named volumes mounted there
# inherit that ownership.
RUN useradd --system --uid 10001 --home-dir /var/lib/finsentry --create-home finsentry \
    && mkdir -p /var/lib/finsentry/ingest /var/lib/finsentry/chdb /etc/finsentry \
    && chown -R finsentry:finsentry /var/lib/finsentry

WORKDIR /opt/finsentry
# The design's top-level folders are mapped into the `finsentry` namespace by pyproject's
# package-dir, so each is copied as is.
COPY pyproject.toml README.md ./
COPY finsentry ./finsentry
COPY ingest ./ingest
COPY models ./models
COPY streams ./streams
COPY alerts ./alerts
COPY dashboards ./dashboards
# A non-editable install; torch is already satisfied so pip keeps the CPU build.
RUN pip install . && finsentry --help > /dev/null

# The container health probe (stdlib only) and the default config; compose mounts its own copy of
# the config over the latter so operators can edit it without a rebuild.
COPY deploy/healthcheck.py ./deploy/healthcheck.py
COPY deploy/finsentry.toml /etc/finsentry/finsentry.toml

USER finsentry
WORKDIR /var/lib/finsentry
ENV FINSENTRY_CONFIG=/etc/finsentry/finsentry.toml

CMD ["finsentry", "--help"]
