"""One send per answer: a response's header block goes out with the first part of its body.

Why: uvicorn's HTTP/1.1 protocol writes a response's status line and headers as soon as the app sends
``http.response.start`` and its body when the app sends ``http.response.body``, and uvloop sends each
write at once: two ``write`` system calls and two TCP segments for every answer (counted with
``strace`` on ``capsule serve`` under load: two writes per request). Here the connection's transport
holds a header block back until the next write on the connection (the body, which uvicorn always
writes, if empty) and sends both as one. The bytes on the wire are the same. A header block that no
body follows in the same event-loop step (a streamed answer whose first chunk comes later) is sent at
the end of that step, and closing the connection sends anything held first.
"""

from __future__ import annotations

import asyncio
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

__all__ = ["CoalescedWrites", "CoalescingHttpTools"]


class CoalescedWrites(asyncio.Transport):
    """A connection's transport whose response header blocks wait for the body written next."""

    def __init__(self, transport: asyncio.Transport, loop: asyncio.AbstractEventLoop) -> None:
        super().__init__()
        self._transport = transport
        self._loop = loop
        self._held: bytes | None = None

    def write(self, data: bytes | bytearray | memoryview) -> None:  # type: ignore[override]
        held = self._held
        if held is not None:
            self._held = None
            self._transport.write(held + bytes(data))
        elif isinstance(data, bytes) and data.startswith(b"HTTP/1.") and data.endswith(b"\r\n\r\n"):
            self._held = data  # a status line and headers: the body follows in the same step
            self._loop.call_soon(self.flush)
        else:
            self._transport.write(data)

    def flush(self) -> None:
        """Send what is held (at the end of the step that wrote it, or before the connection closes)."""
        held = self._held
        if held is not None:
            self._held = None
            self._transport.write(held)

    def close(self) -> None:
        self.flush()
        self._transport.close()

    def abort(self) -> None:
        self._held = None
        self._transport.abort()

    def is_closing(self) -> bool:
        return self._transport.is_closing()

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return self._transport.get_extra_info(name, default)

    def pause_reading(self) -> None:
        self._transport.pause_reading()

    def resume_reading(self) -> None:
        self._transport.resume_reading()

    def is_reading(self) -> bool:
        return self._transport.is_reading()

    def set_protocol(self, protocol: asyncio.BaseProtocol) -> None:
        self._transport.set_protocol(protocol)

    def get_protocol(self) -> asyncio.BaseProtocol:
        return self._transport.get_protocol()

    def get_write_buffer_size(self) -> int:
        return self._transport.get_write_buffer_size() + len(self._held or b"")

    def set_write_buffer_limits(self, high: int | None = None, low: int | None = None) -> None:
        self._transport.set_write_buffer_limits(high, low)

    def can_write_eof(self) -> bool:
        return self._transport.can_write_eof()

    def write_eof(self) -> None:
        self.flush()
        self._transport.write_eof()


class CoalescingHttpTools(HttpToolsProtocol):
    """uvicorn's httptools protocol writing each answer's headers and body with one send."""

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self.transport = CoalescedWrites(transport, self.loop)
