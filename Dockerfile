# mlsgw relay image for Cloud Run: slim Python, non-root, PORT honoured, /health probe.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PORT=8080

WORKDIR /app

# Dependencies first, in a layer of their own: rebuilt only when pyproject.toml changes.
COPY pyproject.toml ./
COPY scripts/pyproject-requirements ./scripts/
RUN python scripts/pyproject-requirements pyproject.toml > /tmp/requirements.txt \
    && pip install -r /tmp/requirements.txt \
    && rm /tmp/requirements.txt

# The code: a change here reinstalls mlsgw alone, not its dependencies.
COPY README.md ./
COPY relay ./relay
COPY mlsgw ./mlsgw
# The runbook's own files: the CLI finds config/alerts.yaml and playbooks/ in the working
# directory when mlsgw is installed as a package.
COPY config ./config
COPY playbooks ./playbooks
RUN pip install --no-deps --no-build-isolation . \
    && useradd --system --uid 10001 --home-dir /app --shell /usr/sbin/nologin mlsgw \
    && mkdir -p /app/data \
    && chown -R mlsgw:mlsgw /app/data

USER mlsgw
EXPOSE 8080
HEALTHCHECK --interval=30s --timeout=3s --start-period=10s --retries=3 \
    CMD python -c "import os,urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/health' % os.environ.get('PORT','8080'), timeout=2)" || exit 1

# The relay reads config/mlsgw.toml when present; PORT (set by Cloud Run) overrides the port.
CMD ["mlsgw", "serve"]
