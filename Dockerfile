FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 DATABASE_PATH=/app/data/bot.sqlite3
WORKDIR /app

COPY pyproject.toml constraints.txt ./
COPY bot ./bot
COPY locales ./locales
RUN pip install --no-cache-dir -c constraints.txt . \
    && useradd --create-home --uid 10001 bot \
    && mkdir -p /app/data && chown bot /app/data

USER 10001
VOLUME ["/app/data"]
# The bot's web server when WEB_PORT=8080 is set (docker-compose.yml does): /healthz, Kie.ai
# callbacks, Telegram's webhook. With long polling and no WEB_PORT, nothing listens.
EXPOSE 8080
CMD ["python", "-m", "bot"]
