"""`chat-tui demo` starts an archive beside its simulated users: what they say in #lobby
is archived, a newcomer who joins #lobby is answered with its history, and the archive
stops with the demo."""

from __future__ import annotations

import asyncio
import uuid

import aio_pika
from aio_pika.abc import AbstractIncomingMessage

from chat_tui.archive.database import ArchiveDatabase, ConversationRef, open_archive_database
from chat_tui.protocol.archive import HistoryPage, HistoryRequest, decode_answer
from chat_tui.protocol.names import ARCHIVE_REQUEST_KEY
from chat_tui.tui.demo import BOT_NAMES, LOBBY, DemoBots
from tests.archive.service_world import REPLY_TO
from tests.conftest import Deployment, eventually


async def ask(deployment: Deployment, request: HistoryRequest) -> HistoryPage:
    connection = await aio_pika.connect(deployment.amqp_url)
    try:
        channel = await connection.channel()
        answered: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()

        async def on_reply(message: AbstractIncomingMessage) -> None:
            if not answered.done():
                answered.set_result(message.body)

        replies = await channel.get_queue(REPLY_TO, ensure=False)
        await replies.consume(on_reply, no_ack=True)
        exchange = await channel.get_exchange(deployment.names.messages_exchange, ensure=False)
        await exchange.publish(
            aio_pika.Message(request.to_body(), reply_to=REPLY_TO, correlation_id=uuid.uuid4().hex),
            ARCHIVE_REQUEST_KEY,
        )
        answer = decode_answer(await asyncio.wait_for(answered, 10))
        assert isinstance(answer, HistoryPage), answer
        return answer
    finally:
        await connection.close()


async def test_the_demo_archives_the_lobby_for_newcomers(deployment: Deployment) -> None:
    for name in BOT_NAMES[:2]:
        deployment.settings(name)  # so that the cleanup removes the bots' queues
    settings = deployment.settings("alice")
    alice = await deployment.client("alice")
    demo = DemoBots(settings, 2, alice, seed=7, pace=(0.1, 0.3))
    running = asyncio.create_task(demo.run())
    try:
        location = settings.data_dir / "demo" / f"{settings.namespace}-archive.sqlite3"
        await eventually(location.exists, what="the demo's archive", timeout=30)
        archive = open_archive_database(str(location))
        await archive.open()
        try:

            async def lobby_has_history() -> bool:
                return await lobby_archived(archive) >= 5

            await eventually(lobby_has_history, what="the lobby archived", timeout=30)
            archived = await lobby_archived(archive)
        finally:
            await archive.close()
        carol = await deployment.client("carol")
        await carol.join_group(LOBBY)
        page = await ask(deployment, HistoryRequest(requester_id="carol", group_id=LOBBY))
        assert len(page.messages) >= archived
        assert {m.sender_id for m in page.messages} <= set(BOT_NAMES[:2]) | {"alice"}
    finally:
        running.cancel()
        await asyncio.gather(running, return_exceptions=True)
        process = demo.archive.process
        await demo.stop()
    assert process is not None and process.returncode is not None, "the archive outlived the demo"


async def lobby_archived(archive: ArchiveDatabase) -> int:
    messages, _ = await archive.history(ConversationRef.group(LOBBY), None, "older", 200)
    return len(messages)
