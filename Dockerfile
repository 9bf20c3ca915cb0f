# kamiya-bot in a container: Python 3.11 (slim), the project with its PostgreSQL driver, run as
# an unprivileged user. README.md "Deployment" shows docker run, compose and systemd.
#
#   docker build -t kamiya-bot .
#   docker run -d --name kamiya-bot --env-file kamiya.env --stop-timeout 30 \
#       -v "$PWD/config.toml:/config/config.toml:ro" -v kamiya-data:/data kamiya-bot
#
# Secrets come from the environment (KAMIYA_API_KEY, TELEGRAM_BOT_TOKEN, DISCORD_BOT_TOKEN,
# TELEGRAM_WEBHOOK_SECRET; PGPASSWORD for PostgreSQL), the rest from the mounted config file.
# Any command works in place of `run`: `docker run --rm ... kamiya-bot check` (the config then
# comes from KAMIYA_BOT_CONFIG, set below), or `migrate`.

# Build stage: a virtual environment with the project installed, copied whole into the final
# image, so neither pip's cache nor the build backend ends up there.
FROM python:3.11-slim AS build
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
RUN python -m venv /opt/kamiya-bot
WORKDIR /src
COPY pyproject.toml README.md ./
COPY bots ./bots
COPY core ./core
COPY storage ./storage
RUN /opt/kamiya-bot/bin/pip install ".[postgres]"

FROM python:3.11-slim
# A system user with a fixed id (files on mounted volumes stay readable across rebuilds) whose
# home /data is the working directory: the default SQLite database lands there.
RUN useradd --system --uid 10001 --user-group --home-dir /data --create-home \
        --shell /usr/sbin/nologin kamiya
COPY --from=build /opt/kamiya-bot /opt/kamiya-bot
ENV PATH="/opt/kamiya-bot/bin:$PATH" \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    KAMIYA_BOT_CONFIG=/config/config.toml
WORKDIR /data
USER kamiya:kamiya
# No HEALTHCHECK here: the health endpoint is optional ([metrics] listen; /healthz on port
# 9464 when set), so compose.yaml declares one for the services that turn it on.
# On SIGTERM the bot finishes replies for [bot] shutdown_grace_s (10 s) and exits within 4 s
# more: stop it with a longer timeout than Docker's 10 s (--stop-timeout 30, stop_grace_period).
STOPSIGNAL SIGTERM
ENTRYPOINT ["kamiya-bot"]
CMD ["run", "--config", "/config/config.toml"]
