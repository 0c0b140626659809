"""Binding the listening socket: a port in use is an error that leaves no socket open behind it."""

from __future__ import annotations

import os
import socket

import pytest

from modelcapsule.serving.server import bind_socket


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


@pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="counts this process's open files in /proc")
def test_a_port_in_use_raises_and_leaves_no_socket_open() -> None:
    with socket.socket() as holder:  # no SO_REUSEPORT: nobody may share it
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        before = open_fds()
        for reuse_port in (False, True):
            with pytest.raises(OSError, match="in use"):
                bind_socket("127.0.0.1", port, reuse_port=reuse_port)
        assert open_fds() == before


def test_a_free_port_is_listening_and_inheritable_for_forked_workers() -> None:
    with bind_socket("127.0.0.1", 0) as sock:
        assert sock.get_inheritable()
        with socket.create_connection(sock.getsockname(), timeout=5):
            pass
