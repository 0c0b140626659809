"""Slow clients time out without holding the server: a request that does not arrive whole within
``--read-timeout`` (slow headers, a slow body, or nothing at all) gets 408 and its connection is closed,
while other clients are answered meanwhile; ``--max-connections`` caps concurrent connections (503)."""

from __future__ import annotations

import socket
import time

import pytest
import requests

from .conftest import Models, Server, start_server

READ_TIMEOUT = 1.0
ROW = {"inputs": [[5.1, 3.5, 1.4, 0.2]]}


@pytest.fixture(scope="module")
def guarded(models: Models, capsule_cmd: list[str], subprocess_env: dict[str, str],
            tmp_path_factory: pytest.TempPathFactory) -> Server:
    srv = start_server(capsule_cmd, subprocess_env, tmp_path_factory.mktemp("guarded"), str(models.iris_path),
                       "--read-timeout", str(READ_TIMEOUT), "--max-connections", "6", "--no-access-log")
    yield srv  # type: ignore[misc]
    srv.stop()


def connect(server: Server) -> socket.socket:
    return socket.create_connection(("127.0.0.1", server.http_port), timeout=10)


def read_all(sock: socket.socket) -> bytes:
    """Everything the server sends until it closes the connection."""
    chunks = []
    while chunk := sock.recv(65536):
        chunks.append(chunk)
    return b"".join(chunks)


SLOW_STARTS = {
    "nothing sent": b"",
    "headers cut short": b"POST /predict HTTP/1.1\r\nHost: x\r\nContent-Ty",
    "body cut short": b"POST /predict HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
    b"Content-Length: 200\r\n\r\n{\"inputs\": [[5.1,",
}


@pytest.mark.parametrize("start", SLOW_STARTS.values(), ids=SLOW_STARTS.keys())
def test_a_request_that_does_not_arrive_in_time_gets_408_and_is_disconnected(guarded: Server, start: bytes) -> None:
    with connect(guarded) as sock:
        began = time.monotonic()
        sock.sendall(start)
        # meanwhile the server answers everyone else at once
        assert requests.post(f"{guarded.url}/predict", json=ROW, timeout=5).status_code == 200
        answer = read_all(sock)
        waited = time.monotonic() - began
    assert answer.startswith(b"HTTP/1.1 408"), answer[:80]
    assert READ_TIMEOUT * 0.8 <= waited <= READ_TIMEOUT + 5


def test_a_request_dribbled_in_slower_than_the_timeout_is_cut_off(guarded: Server) -> None:
    body = b'{"inputs": [[5.1, 3.5, 1.4, 0.2]]}'
    head = f"POST /predict HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
    with connect(guarded) as sock:
        began = time.monotonic()
        sock.sendall(head.encode())
        try:
            for byte in body:  # one byte every 0.2 s: 7 s in all, the timeout is 1 s
                sock.sendall(bytes([byte]))
                time.sleep(0.2)
        except (BrokenPipeError, ConnectionResetError):
            pass
        answer = read_all(sock)
        assert time.monotonic() - began < READ_TIMEOUT + 5
    assert answer.startswith(b"HTTP/1.1 408")


def test_a_prompt_client_on_a_kept_alive_connection_is_not_cut_off(guarded: Server) -> None:
    with requests.Session() as session:
        for _ in range(3):
            assert session.post(f"{guarded.url}/predict", json=ROW, timeout=5).status_code == 200
            time.sleep(READ_TIMEOUT * 1.2)  # idle between requests is the keep-alive timeout's business


def test_connections_past_the_cap_get_503(guarded: Server) -> None:
    idle = [connect(guarded) for _ in range(6)]
    try:
        time.sleep(0.2)
        answer = requests.post(f"{guarded.url}/predict", json=ROW, timeout=5)
        assert answer.status_code == 503
    finally:
        for sock in idle:
            sock.close()
    time.sleep(0.2)
    assert requests.post(f"{guarded.url}/predict", json=ROW, timeout=5).status_code == 200
