"""Listening sockets for the servers of ``capsule serve`` (HTTP and gRPC alike)."""

from __future__ import annotations

import socket

__all__ = ["bind_socket"]


def bind_socket(host: str, port: int, *, reuse_port: bool = False, backlog: int = 2048) -> socket.socket:
    """A listening TCP socket, inheritable: bound before workers fork so that they all accept on it.

    ``reuse_port`` lets other processes of the same user bind the same port too (``SO_REUSEPORT``): the
    kernel then spreads new connections across every socket bound there (gRPC in each worker, Ray
    replicas on one node). A failure closes the socket and raises the ``OSError``."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if reuse_port:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind((host, port))
        sock.listen(backlog)
        sock.set_inheritable(True)
    except BaseException:
        sock.close()  # a port in use must not leave an open socket behind for the caller to leak
        raise
    return sock
