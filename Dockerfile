# chat-tui in a container: compose.yaml runs `chat-tui archive` with it, and more of them
# with `docker compose up -d --scale archive=3`. Any other command works too:
# `docker run --rm -it chat-tui --help`.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

# Every dependency has a wheel for this image (asyncpg included): no compiler needed.
COPY pyproject.toml README.md /tmp/chat-tui/
COPY chat_tui /tmp/chat-tui/chat_tui
RUN pip install /tmp/chat-tui && rm -rf /tmp/chat-tui

# Not root: a worker needs nothing but its network and its data directory.
RUN useradd --create-home --uid 10001 chat && install -d -o chat -g chat /data
USER chat
WORKDIR /home/chat
# The archive's SQLite file, when archive_db is not a postgresql:// URL.
ENV CHAT_TUI_DATA_DIR=/data
VOLUME /data

ENTRYPOINT ["chat-tui"]
CMD ["--help"]
