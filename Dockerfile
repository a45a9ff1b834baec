# syntax=docker/dockerfile:1
# Runs `apps-api serve` against external PostgreSQL and Redis. Every variable below is required
# (serve, worker and migrate stop with a one-line error naming a missing one):
#   docker build -t apps-api .
#   docker run --rm apps-api apps-api keygen      # -> ENCRYPTION_KEY; SECRET_KEY: any long random string
#   export APPS_API_DATABASE_URL=postgresql://user:password@db-host:5432/apps_api \
#          APPS_API_REDIS_URL=redis://redis-host:6379/0 \
#          APPS_API_SECRET_KEY=<long random string> APPS_API_ENCRYPTION_KEYS=<ENCRYPTION_KEY>
#   ENV="-e APPS_API_DATABASE_URL -e APPS_API_REDIS_URL -e APPS_API_SECRET_KEY -e APPS_API_ENCRYPTION_KEYS"
#   docker run --rm $ENV apps-api apps-api migrate                  # once per release
#   docker run -d $ENV -p 8000:8000 apps-api                        # the API (/, /docs, /console/)
#   docker run -d $ENV apps-api apps-api worker                     # webhook delivery (one or more)
# The same keys in every container; keep them (losing APPS_API_ENCRYPTION_KEYS loses app secrets).

FROM python:3.11-slim AS build
WORKDIR /build
RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH
COPY pyproject.toml README.md ./
COPY src ./src
RUN pip install --no-cache-dir --upgrade pip && pip install --no-cache-dir .

FROM python:3.11-slim AS runtime
RUN groupadd --system app && useradd --system --gid app --home-dir /app --shell /usr/sbin/nologin app
WORKDIR /app
COPY --from=build /opt/venv /opt/venv
COPY alembic.ini ./
COPY migrations ./migrations
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    APPS_API_ALEMBIC_INI=/app/alembic.ini \
    APPS_API_STATE_DIR=/app/state
USER app
EXPOSE 8000
HEALTHCHECK --interval=30s --timeout=3s CMD python -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/healthz')"
CMD ["apps-api", "serve", "--host", "0.0.0.0", "--port", "8000"]
