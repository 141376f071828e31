# gemini-cli-proxy: one process serving the OpenAI / Anthropic / Gemini doors on port 8000.
# Build:  docker build -t gemini-cli-proxy .
# Run:    see docs/docker.md (mounts: /data state, /oauth writable OAuth files, /credentials read-only).
#
# PYTHON_IMAGE may name a mirror or a digest-pinned copy of the same image; keep it a Python 3.11 image.
ARG PYTHON_IMAGE=python:3.11-slim-bookworm

# --- build: a virtualenv with the pinned runtime dependencies and the project, nothing else --------------
FROM ${PYTHON_IMAGE} AS build

ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    PYTHONDONTWRITEBYTECODE=1

RUN python3 -m venv /opt/venv

# Dependencies first (their own layer, rebuilt only when the lock changes); every file checked by hash.
COPY requirements-runtime.lock /tmp/requirements-runtime.lock
RUN /opt/venv/bin/python -m pip install --no-cache-dir --require-hashes --no-deps \
        -r /tmp/requirements-runtime.lock

WORKDIR /src
COPY pyproject.toml README.md ./
COPY src ./src
# The project alone (its dependencies are above), then the installers: the image runs, it does not install.
RUN /opt/venv/bin/python -m pip install --no-cache-dir --no-deps . \
    && /opt/venv/bin/python -m pip uninstall --yes --quiet setuptools pip

# --- runtime --------------------------------------------------------------------------------------------
FROM ${PYTHON_IMAGE}

LABEL org.opencontainers.image.title="gemini-cli-proxy" \
      org.opencontainers.image.description="OpenAI-compatible gateway in front of Google Gemini" \
      org.opencontainers.image.licenses="MIT"

# A fixed, numeric, unprivileged user: files mounted into /oauth must be writable by it (uid 10001).
RUN groupadd --gid 10001 gemini \
    && useradd --uid 10001 --gid 10001 --home-dir /home/gemini --create-home \
        --shell /usr/sbin/nologin gemini \
    && mkdir -p /data /oauth /credentials \
    && chown 10001:10001 /data /oauth \
    && chmod 0700 /data /oauth

COPY --from=build /opt/venv /opt/venv

# Listen on every interface of the container: the server then refuses to start without PROXY_API_KEYS.
# State (cooldowns, usage, token cache, stored responses) in SQLite on the /data volume; several
# replicas share a redis:// store instead (see compose.yaml). OAuth files live in /oauth (a folder,
# mounted read-write: refreshed tokens are written back there); key files and service accounts
# are mounted read-only under /credentials and named by GEMINI_KEYS_FILE / VERTEX_CREDENTIALS.
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    HOME=/home/gemini \
    PROXY_HOST=0.0.0.0 \
    PROXY_PORT=8000 \
    PROXY_STATE_URL=sqlite:////data/state.sqlite3 \
    GEMINI_OAUTH_CREDS=/oauth

VOLUME ["/data"]
EXPOSE 8000
USER 10001:10001
WORKDIR /home/gemini

# slim has no curl: Python's urllib asks /health (no auth needed) on the configured port.
HEALTHCHECK --interval=30s --timeout=5s --start-period=15s --retries=3 \
    CMD ["python3", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/health' % os.environ.get('PROXY_PORT', '8000'), timeout=4).close()"]

# SIGTERM (docker stop) drains in-flight requests for PROXY_SHUTDOWN_GRACE seconds (10): give the
# container more than that to stop, e.g. `docker stop -t 30` or compose's stop_grace_period.
STOPSIGNAL SIGTERM
ENTRYPOINT ["gemini-cli-proxy"]
CMD ["serve"]
