"""One send per answer: a response's header block leaves with its body, and nothing held is ever lost."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Awaitable, Callable

from modelcapsule.serving.http_writes import CoalescedWrites

HEAD = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\ncontent-type: application/json\r\n\r\n"


def run_on_a_socket(scenario: Callable[[CoalescedWrites, list[bytes]], Awaitable[None]]) -> tuple[bytes, list[bytes]]:
    """Run ``scenario`` with a coalescing transport over one end of a real socket pair; what the other end
    received, and every chunk the real transport was asked to send."""
    ours, theirs = socket.socketpair()

    async def main() -> None:
        loop = asyncio.get_running_loop()
        transport, _ = await loop.connect_accepted_socket(asyncio.Protocol, ours)
        sent: list[bytes] = []
        write = transport.write

        def counting(data: bytes | bytearray | memoryview) -> None:  # the real write, counted
            sent.append(bytes(data))
            write(data)

        transport.write = counting  # type: ignore[method-assign]
        coalesced = CoalescedWrites(transport, loop)  # type: ignore[arg-type]
        await scenario(coalesced, sent)
        coalesced.close()
        await asyncio.sleep(0.01)
        result.append(sent)

    result: list[list[bytes]] = []
    asyncio.run(main())
    theirs.settimeout(5)
    received = b""
    while chunk := theirs.recv(65536):
        received += chunk
    theirs.close()
    return received, result[0]


def test_headers_and_body_written_in_one_step_leave_in_one_send() -> None:
    async def answer(transport: CoalescedWrites, sent: list[bytes]) -> None:
        transport.write(HEAD)
        assert sent == []  # held for the body
        transport.write(b"{}")

    received, sent = run_on_a_socket(answer)
    assert received == HEAD + b"{}"
    assert sent == [HEAD + b"{}"]


def test_a_header_block_alone_leaves_at_the_end_of_the_step() -> None:
    async def streamed(transport: CoalescedWrites, sent: list[bytes]) -> None:
        transport.write(HEAD)
        await asyncio.sleep(0)  # the step ends before the first chunk: the headers go out meanwhile
        await asyncio.sleep(0)
        assert sent == [HEAD]
        transport.write(b"{}")

    received, sent = run_on_a_socket(streamed)
    assert received == HEAD + b"{}"
    assert sent == [HEAD, b"{}"]


def test_closing_sends_what_is_held_and_other_writes_pass_through() -> None:
    async def closing(transport: CoalescedWrites, sent: list[bytes]) -> None:
        transport.write(b"not a header block")
        assert sent == [b"not a header block"]
        transport.write(HEAD)

    received, sent = run_on_a_socket(closing)  # the scenario's end closes the transport at once
    assert received == b"not a header block" + HEAD
    assert sent == [b"not a header block", HEAD]
