# syntax=docker/dockerfile:1
FROM python:3.12-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

RUN useradd --create-home --uid 10001 bot
WORKDIR /app

# dependencies first, so a source change does not reinstall them
COPY pyproject.toml README.md ./
RUN mkdir bot core handlers watchers \
    && touch bot/__init__.py core/__init__.py handlers/__init__.py watchers/__init__.py \
    && pip install . \
    && pip uninstall -y basiswatch

COPY bot ./bot
COPY core ./core
COPY handlers ./handlers
COPY watchers ./watchers
COPY config.example.toml ./
RUN pip install --no-deps .

USER 10001

HEALTHCHECK --interval=30s --timeout=10s --start-period=30s --retries=3 \
    CMD ["python", "-m", "bot", "--config", "/app/config.toml", "healthcheck"]

# config.toml is mounted by the deployment (see compose.yaml); secrets come from the environment
CMD ["python", "-m", "bot", "--config", "/app/config.toml"]
