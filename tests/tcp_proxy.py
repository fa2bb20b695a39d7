"""A TCP proxy on loopback in front of a real server, for tests that need the network to be
slow or broken in one precise place: latency per direction (optionally only for chunks that
match a byte pattern, so one command can be slowed and the rest left alone), and connections
cut while a chunk matches.

Order is kept per connection and direction: a chunk held back delays every chunk behind it,
as a slow link would. Used as an async context manager::

    async with TcpProxy(port, upstream=Delay(0.3, b"GET")) as proxy:
        url = f"redis://127.0.0.1:{proxy.port}/0"
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass
from types import TracebackType


@dataclass
class Delay:
    """Hold chunks for ``seconds`` before forwarding them; only chunks containing ``match``
    when it is given (a chunk is what one read returned: a small command is one chunk)."""

    seconds: float = 0.0
    match: bytes | None = None

    def applies(self, chunk: bytes) -> bool:
        return self.seconds > 0 and (self.match is None or self.match in chunk)


class TcpProxy:
    def __init__(
        self,
        target_port: int,
        *,
        upstream: Delay | None = None,
        downstream: Delay | None = None,
        target_host: str = "127.0.0.1",
    ) -> None:
        self.target = (target_host, target_port)
        self.upstream = upstream or Delay()
        """Client to server."""
        self.downstream = downstream or Delay()
        """Server to client."""
        self.cut_on: bytes | None = None
        """While set, a client chunk containing it closes that connection instead of being
        forwarded (the server never sees it)."""
        self.port = 0
        self.delayed = 0
        """Chunks held back so far, both directions."""
        self.held = asyncio.Event()
        """Set while a chunk is being held back (cleared when it is sent on)."""
        self.cuts = 0
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    async def __aenter__(self) -> TcpProxy:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        self.port = int(self._server.sockets[0].getsockname()[1])
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        assert self._server is not None
        self._server.close()
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            with contextlib.suppress(asyncio.CancelledError, OSError):
                await task
        await self._server.wait_closed()

    async def _accept(self, client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        handler = asyncio.current_task()
        assert handler is not None
        self._tasks.add(handler)
        try:
            await self._relay(client_r, client_w)
        except asyncio.CancelledError:
            # The proxy is closing: end quietly (asyncio logs a handler ending in an error).
            client_w.transport.abort()
        finally:
            self._tasks.discard(handler)

    async def _relay(self, client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        try:
            server_r, server_w = await asyncio.open_connection(*self.target)
        except OSError:
            client_w.close()
            return
        up = asyncio.create_task(self._pipe(client_r, server_w, self.upstream, client_w))
        down = asyncio.create_task(self._pipe(server_r, client_w, self.downstream, None))
        for task in (up, down):
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        # Either side closing ends the connection as a whole.
        await asyncio.wait({up, down}, return_when=asyncio.FIRST_COMPLETED)
        for task in (up, down):
            task.cancel()
        for writer in (client_w, server_w):
            writer.transport.abort()

    async def _pipe(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        delay: Delay,
        client: asyncio.StreamWriter | None,
    ) -> None:
        while chunk := await reader.read(65536):
            if client is not None and self.cut_on is not None and self.cut_on in chunk:
                self.cuts += 1
                client.transport.abort()  # a reset, as a dropped link would give
                return
            if delay.applies(chunk):
                self.delayed += 1
                self.held.set()
                await asyncio.sleep(delay.seconds)
                self.held.clear()
            writer.write(chunk)
            await writer.drain()
