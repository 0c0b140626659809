"""Inference POSTs are answered by the connection's protocol itself, with the bytes the app would send,
and everything HTTP/1.1 asks of a connection still holds: pipelining, ``Expect: 100-continue``,
``Connection: close``, HTTP/1.0, the keep-alive timeout."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator

import pytest

from modelcapsule.serving import http_direct

from .conftest import Models, Server, start_server

BODY = b'{"inputs": [[5.1, 3.5, 1.4, 0.2]]}'
KEEP_ALIVE = 1.0


def post(path: str = "/predict", body: bytes = BODY, *extra: str, version: str = "1.1") -> bytes:
    headers = [f"POST {path} HTTP/{version}", "Host: 127.0.0.1", "Content-Type: application/json",
               f"Content-Length: {len(body)}", "X-Request-Id: fixed-id", *extra]
    return ("\r\n".join(headers) + "\r\n\r\n").encode() + body


@pytest.fixture(scope="module")
def server(models: Models, capsule_cmd: list[str], subprocess_env: dict[str, str],
           tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    srv = start_server(capsule_cmd, subprocess_env, tmp_path_factory.mktemp("direct"), str(models.iris_path),
                       "--keep-alive", str(KEEP_ALIVE), "--no-access-log")
    yield srv
    srv.stop()


def exchange(server: Server, data: bytes, answers: int = 1) -> tuple[list[bytes], socket.socket]:
    """Send ``data`` on a new connection and read ``answers`` whole answers (by their content-length)."""
    sock = socket.create_connection(("127.0.0.1", server.http_port), timeout=10)
    sock.sendall(data)
    return [read_answer(sock) for _ in range(answers)], sock


_buffers: dict[int, bytes] = {}


def read_answer(sock: socket.socket) -> bytes:
    buffer = _buffers.pop(sock.fileno(), b"")
    while b"\r\n\r\n" not in buffer:
        buffer += _recv(sock)
    head, _, rest = buffer.partition(b"\r\n\r\n")
    length = next(int(line.split(b":")[1]) for line in head.split(b"\r\n")
                  if line.lower().startswith(b"content-length"))
    while len(rest) < length:
        rest += _recv(sock)
    _buffers[sock.fileno()] = rest[length:]
    return head + b"\r\n\r\n" + rest[:length]


def _recv(sock: socket.socket) -> bytes:
    chunk = sock.recv(65536)
    assert chunk, "the server closed the connection"
    return chunk


def without_date(answer: bytes) -> bytes:
    return b"\r\n".join(line for line in answer.split(b"\r\n") if not line.startswith(b"date:"))


def test_the_installed_uvicorn_has_what_the_direct_path_needs() -> None:
    assert http_direct.supported()


@pytest.mark.parametrize("path, body", [
    ("/predict", BODY),
    ("/v2/models/iris/infer", b'{"inputs": [{"name": "input", "shape": [1, 4], "datatype": "FP64", '
                              b'"data": [5.1, 3.5, 1.4, 0.2]}]}'),
    ("/v2/models/iris/infer", b"{not json"),
    ("/v2/models/nobody/infer", b'{"inputs": []}'),
], ids=["plain", "v2", "bad-json", "unknown-model"])
def test_the_direct_answer_is_byte_for_byte_the_apps(server: Server, path: str, body: bytes) -> None:
    # a request with X-Forwarded-For goes through the whole ASGI app (the proxy-headers middleware)
    [direct], a = exchange(server, post(path, body))
    [through_app], b = exchange(server, post(path, body, "X-Forwarded-For: 10.0.0.1"))
    a.close()
    b.close()
    assert without_date(direct) == without_date(through_app)
    assert direct.startswith(b"HTTP/1.1 ") and b"\r\nx-request-id: fixed-id\r\n" in direct
    assert b"\r\ndate: " in direct and b"\r\nserver: uvicorn\r\n" in direct


def test_pipelined_requests_are_answered_in_order(server: Server) -> None:
    rows = [b'{"inputs": [[5.1, 3.5, 1.4, 0.2]]}', b'{"inputs": [[6.7, 3.0, 5.2, 2.3]]}', b"{not json"]
    answers, sock = exchange(server, b"".join(post("/predict", row) for row in rows), answers=3)
    sock.close()
    assert [a.split(b"\r\n", 1)[0] for a in answers] == [b"HTTP/1.1 200 OK"] * 2 + [b"HTTP/1.1 400 Bad Request"]
    assert answers[0].endswith(b'{"prediction":[0]}') and answers[1].endswith(b'{"prediction":[2]}')


def test_expect_100_continue_gets_its_interim_answer_before_the_body_is_sent(server: Server) -> None:
    request = post("/predict", BODY, "Expect: 100-continue")
    head = request[: request.index(b"\r\n\r\n") + 4]
    with socket.create_connection(("127.0.0.1", server.http_port), timeout=10) as sock:
        sock.sendall(head)
        assert sock.recv(65536) == b"HTTP/1.1 100 Continue\r\n\r\n"
        sock.sendall(BODY)
        assert read_answer(sock).endswith(b'{"prediction":[0]}')


@pytest.mark.parametrize("extra, version", [("Connection: close", "1.1"), ("X-Nothing: 1", "1.0")],
                         ids=["connection-close", "http-1.0"])
def test_a_connection_not_kept_alive_is_answered_then_closed(server: Server, extra: str, version: str) -> None:
    [answer], sock = exchange(server, post("/predict", BODY, extra, version=version))
    with sock:
        assert b"\r\nconnection: close\r\n" in answer and answer.endswith(b'{"prediction":[0]}')
        assert sock.recv(65536) == b""  # closed by the server


def test_an_idle_kept_alive_connection_is_closed_after_the_keep_alive_timeout(server: Server) -> None:
    [_], sock = exchange(server, post())
    with sock:
        sock.sendall(post())  # a second request on the same connection is still answered
        assert read_answer(sock).endswith(b'{"prediction":[0]}')
        began = time.monotonic()
        assert sock.recv(65536) == b""
        assert KEEP_ALIVE * 0.8 <= time.monotonic() - began <= KEEP_ALIVE + 5


def test_a_request_id_that_could_not_be_echoed_is_refused_before_any_endpoint_runs(server: Server) -> None:
    # control characters never reach the answer's headers: the parser answers 400, on either path
    for extra in ("X-Nothing: 1", "X-Forwarded-For: 10.0.0.1"):
        [answer], sock = exchange(server, post("/predict", BODY, extra).replace(b"fixed-id", b"fixed\x01id"))
        sock.close()
        assert answer.startswith(b"HTTP/1.1 400 ") and b"x-request-id" not in answer
