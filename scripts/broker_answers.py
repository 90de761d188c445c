"""Exit 0 if an AMQP broker answers at the URL (a real handshake, not just a port)."""

import asyncio
import sys

import aio_pika


async def main(url: str, timeout: float) -> int:
    try:
        connection = await aio_pika.connect(url, timeout=timeout)
    except Exception as exc:
        print(f"no answer from {url}: {exc!r}", file=sys.stderr)
        return 1
    await connection.close()
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main(sys.argv[1], float(sys.argv[2]) if len(sys.argv) > 2 else 3.0)))
