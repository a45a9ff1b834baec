# syntax=docker/dockerfile:1
# Runs `apps-api serve` against external PostgreSQL and Redis:
#   docker run -e APPS_API_DATABASE_URL=postgresql://... -e APPS_API_REDIS_URL=redis://... \
#              -e APPS_API_SECRET_KEY=... -p 8000:8000 apps-api
# Run the worker from the same image with `apps-api worker`, and `apps-api migrate` once per release.

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
HEALTHCHECK --interval=30s --timeout=3s CMD python -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/docs')"
CMD ["apps-api", "serve", "--host", "0.0.0.0", "--port", "8000"]
