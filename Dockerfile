# zoho-bridge: one process, SQLite in /data by default (set BRIDGE_DATABASE_URL for PostgreSQL).
FROM python:3.11-slim AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY bridge ./bridge
COPY migrations ./migrations
COPY samples ./samples
RUN pip install --no-cache-dir --upgrade pip \
 && pip wheel --no-cache-dir --wheel-dir /wheels .

FROM python:3.11-slim
RUN useradd --create-home --uid 10001 --shell /usr/sbin/nologin bridge \
 && mkdir /data && chown bridge:bridge /data
COPY --from=build /wheels /wheels
RUN pip install --no-cache-dir /wheels/*.whl && rm -rf /wheels
USER bridge
WORKDIR /data
ENV BRIDGE_HOST=0.0.0.0 \
    BRIDGE_PORT=8000 \
    BRIDGE_DATABASE_URL=sqlite+aiosqlite:////data/bridge.db \
    BRIDGE_LOG_FORMAT=json \
    PYTHONUNBUFFERED=1
VOLUME ["/data"]
EXPOSE 8000
HEALTHCHECK --interval=15s --timeout=3s --start-period=20s --retries=3 \
  CMD python -c "import os, urllib.request; urllib.request.urlopen(f'http://127.0.0.1:{os.environ.get(\"BRIDGE_PORT\", \"8000\")}/healthz', timeout=2)" || exit 1
CMD ["zoho-bridge", "serve"]
