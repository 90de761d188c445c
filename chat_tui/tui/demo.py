"""`chat-tui demo`: simulated users who chat in #lobby and DM the user.

Each bot is a real ChatClient in this process, with its own cache under
`<data_dir>/demo`, so everything the user sees went through the broker: the bots'
messages arrive like anyone's, and the user's messages get real delivered/read ticks.

An archive runs beside them (`chat-tui archive`, a process of its own, its SQLite file
under `<data_dir>/demo` unless `archive_db` says otherwise), so that #lobby keeps its
history from one demo to the next: a user who joins it, or comes back on a new machine,
sees what was said before.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import signal
import sys
from collections.abc import Callable, Sequence

from chat_tui.config import Settings
from chat_tui.core.client import ChatClient
from chat_tui.core.errors import ChatError
from chat_tui.core.records import StoredMessage
from chat_tui.core.sink import Sink
from chat_tui.protocol.conversations import Conversation

LOBBY = "lobby"
BOT_NAMES = ("ada", "grace", "linus", "margaret", "dennis", "barbara", "ken", "radia")
LINES = (
    "morning all",
    "has anyone tried the new build?",
    "the broker restarted and nothing was lost, nice",
    "lunch in 10?",
    "I'm reviewing the receipts code now",
    "who broke the coffee machine again",
    "ship it",
    "tests are green on my machine",
    "can someone look at my PR when they have a minute",
    "RabbitMQ streams are neat for the directory",
    "brb",
    "that's a great point",
    "[bold]this stays literal[/bold], as does \x1b[31m this escape",
)
DM_LINES = (
    "hey {user}, welcome to chat-tui! Alt+A jumps to the next unread conversation.",
    "{user}: F1 lists every key. Try Ctrl+G to switch conversations.",
    "psst {user}, your messages show ◷ while queued, then ✓, ✓✓ and ✓✓ read.",
)
REPLIES = ("got it", "sounds good", "ha, yes", "let me check", "👍", "on it")


class _BotSink(Sink):
    """Reads everything at once (so the user sees read ticks) and answers DMs."""

    def __init__(self, bot: DemoBot) -> None:
        self.bot = bot

    async def show(self, messages: Sequence[StoredMessage]) -> None:
        for message in messages:
            self.bot.heard(message)


class DemoBot:
    def __init__(self, settings: Settings, user: str, rng: random.Random) -> None:
        self.user = user
        self.rng = rng
        self.client = ChatClient(settings, _BotSink(self))
        self._tasks: set[asyncio.Task[None]] = set()

    def heard(self, message: StoredMessage) -> None:
        task = asyncio.get_running_loop().create_task(self._read_and_answer(message))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _read_and_answer(self, message: StoredMessage) -> None:
        await asyncio.sleep(self.rng.uniform(0.5, 2.0))
        with contextlib.suppress(ChatError, RuntimeError):
            await self.client.mark_read(message.conversation, message.seq)
            if message.conversation.kind == "dm" and not message.outgoing:
                await asyncio.sleep(self.rng.uniform(0.5, 1.5))
                await self.client.send(message.conversation, self.rng.choice(REPLIES))

    async def say(self, conversation: Conversation, text: str) -> None:
        with contextlib.suppress(ChatError, RuntimeError):
            await self.client.send(conversation, text)

    async def stop(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await self.client.stop()


ARCHIVE_READY = b"chat-tui archive: "
"""The line the archive prints on stderr once it consumes (archive/service.py)."""
ARCHIVE_START_TIMEOUT = 20.0


class DemoArchive:
    """`python -m chat_tui archive` for the demo's namespace, stopped with the demo."""

    def __init__(self, settings: Settings) -> None:
        demo_dir = settings.data_dir / "demo"
        self.env = {
            **os.environ,
            "CHAT_TUI_AMQP_URL": settings.amqp_url,  # the environment: never argv
            "CHAT_TUI_NAMESPACE": settings.namespace,
            "CHAT_TUI_QUEUE_TYPE": settings.queue_type,
            "CHAT_TUI_DATA_DIR": str(demo_dir),
            "CHAT_TUI_ARCHIVE_DB": settings.archive_db
            or str(demo_dir / f"{settings.namespace}-archive.sqlite3"),
        }
        self.process: asyncio.subprocess.Process | None = None
        self._reading: asyncio.Task[None] | None = None

    async def start(self) -> bool:
        """Start it and wait until it consumes; False if it did not (it keeps trying,
        and the demo goes on without history meanwhile)."""
        self.process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "chat_tui",
            "archive",
            env=self.env,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.PIPE,
        )
        stderr = self.process.stderr
        assert stderr is not None
        # Read for as long as it runs: a pipe nobody empties would stop its writer.
        ready: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        self._reading = asyncio.create_task(self._read_stderr(stderr, ready))
        try:
            async with asyncio.timeout(ARCHIVE_START_TIMEOUT):
                return await ready
        except TimeoutError:
            return False

    @staticmethod
    async def _read_stderr(stderr: asyncio.StreamReader, ready: asyncio.Future[bool]) -> None:
        while line := await stderr.readline():
            if line.startswith(ARCHIVE_READY) and not ready.done():
                ready.set_result(True)
        if not ready.done():
            ready.set_result(False)  # it ended before it was ready

    async def stop(self) -> None:
        process, self.process = self.process, None
        if process is None or process.returncode is not None:
            return
        process.send_signal(signal.SIGTERM)
        try:
            await asyncio.wait_for(process.wait(), 15)
        except TimeoutError:
            process.kill()
            await process.wait()
        if self._reading is not None:
            await asyncio.gather(self._reading, return_exceptions=True)


class DemoBots:
    """Starts `count` bots next to the user's own client and keeps them talking."""

    def __init__(
        self,
        settings: Settings,
        count: int,
        user_client: ChatClient,
        *,
        notify: Callable[[str], object] = lambda text: None,
        seed: int | None = None,
        pace: tuple[float, float] = (2.0, 6.0),
    ) -> None:
        self.user = settings.user
        self.user_client = user_client
        self.notify = notify
        self.pace = pace
        self.rng = random.Random(seed)
        names = [n for n in BOT_NAMES if n != self.user][: max(0, count)]
        data_dir = settings.data_dir / "demo"
        self.archive = DemoArchive(settings)
        self.bots = [
            DemoBot(
                settings.model_copy(update={"user": name, "data_dir": data_dir}), name, self.rng
            )
            for name in names
        ]

    async def run(self) -> None:
        """Start the archive, connect the bots, gather everyone in #lobby, then chat until
        cancelled."""
        if not await self.archive.start():
            self.notify("demo: the archive did not start; #lobby's history is not kept")
        for bot in self.bots:
            await bot.client.start()
        if not await self.user_client.wait_online(15) or not all(
            [await bot.client.wait_online(15) for bot in self.bots]
        ):
            self.notify("demo: the broker does not answer; the simulated users wait for it")
            await self.user_client.wait_online()
        for bot in self.bots:
            await bot.client.wait_directory()
        await self._gather_in_lobby()
        lobby = Conversation.group(LOBBY)
        for index, bot in enumerate(self.bots):
            if index < len(DM_LINES):
                await asyncio.sleep(self.rng.uniform(*self.pace) / 2)
                await bot.say(Conversation.dm(self.user), DM_LINES[index].format(user=self.user))
        while True:
            await asyncio.sleep(self.rng.uniform(*self.pace))
            if not self.bots:
                return
            bot = self.rng.choice(self.bots)
            if self.rng.random() < 0.1:
                await bot.say(Conversation.dm(self.user), f"{self.user}, {self.rng.choice(LINES)}")
            else:
                await bot.say(lobby, self.rng.choice(LINES))

    async def _gather_in_lobby(self) -> None:
        if not self.bots:
            return
        founder = self.bots[0].client
        if LOBBY not in await founder.cache.groups():
            with contextlib.suppress(ChatError):
                await founder.create_group(LOBBY)
        for client in [bot.client for bot in self.bots] + [self.user_client]:
            if not await _wait_for_group(client, LOBBY, 15.0):
                continue
            if client.me not in await client.cache.members(LOBBY):
                with contextlib.suppress(ChatError):
                    await client.join_group(LOBBY)
        # A join applied locally raises no directory event: tell the user's face.
        self.user_client.sink.directory_changed()

    async def stop(self) -> None:
        for bot in self.bots:
            await bot.stop()
        await self.archive.stop()


async def _wait_for_group(client: ChatClient, group: str, timeout: float) -> bool:
    """Until the client's directory knows `group` (another bot may just have created it)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while group not in await client.cache.groups():
        if loop.time() > deadline:
            return False
        await client.wait_directory(2.0)
        await asyncio.sleep(0.2)
    return True
