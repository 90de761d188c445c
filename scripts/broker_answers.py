"""Exit 0 if an AMQP broker answers at CHAT_TUI_AMQP_URL (a real handshake, not just a
port). The URL comes from the environment, never the command line, where its password
would show in the process list. Usage: broker_answers.py [TIMEOUT_SECONDS]"""

import asyncio
import os
import sys

import aio_pika

from chat_tui.config import redact

DEFAULT_URL = "amqp://guest:guest@localhost:5672/"


async def main(url: str, timeout: float) -> int:
    try:
        connection = await aio_pika.connect(url, timeout=timeout)
    except Exception as exc:
        print(f"no answer from {redact(url)}: {exc!r}", file=sys.stderr)
        return 1
    await connection.close()
    return 0


if __name__ == "__main__":
    url = os.environ.get("CHAT_TUI_AMQP_URL", DEFAULT_URL)
    sys.exit(asyncio.run(main(url, float(sys.argv[1]) if len(sys.argv) > 1 else 3.0)))
