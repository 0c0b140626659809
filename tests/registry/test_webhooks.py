"""Webhooks against a real HTTP receiver on 127.0.0.1: one signed JSON POST per event, retried with
backoff after failures, every attempt in the delivery log (``capsule registry webhook log``)."""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from click.testing import CliRunner

from modelcapsule.cli import cli
from modelcapsule.registry import Registry
from modelcapsule.registry.local import LocalRegistry

from .conftest import Capsules


class Receiver:
    """Records each POST; answers 500 to the first ``failures`` of them, then 204."""

    def __init__(self, failures: int = 0) -> None:
        self.failures, self.received = failures, []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                receiver.received.append((dict(self.headers), body))
                self.send_response(500 if len(receiver.received) <= receiver.failures else 204)
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver(failures=2)
    yield r
    r.close()


def fast_retries(reg: Registry) -> LocalRegistry:
    backend = reg.backend
    assert isinstance(backend, LocalRegistry)
    backend.dispatcher.backoff_s = 0.05
    return backend


def test_each_event_is_posted_signed_and_retried_until_delivered(tmp_path: Path, capsules: Capsules,
                                                                 receiver: Receiver) -> None:
    with Registry(tmp_path / "reg") as reg:
        backend = fast_retries(reg)
        hook = reg.add_webhook(receiver.url, "s3cret", ["alias_set"])
        reg.register("fraud", capsules.a)  # a "registered" event: not subscribed
        reg.set_alias("fraud", "champion", 1, reason="first")
        assert backend.dispatcher.flush(30)
        assert len(receiver.received) == 3  # two 500s, then delivered
        headers, body = receiver.received[-1]
        expected = "sha256=" + hmac.new(b"s3cret", body, hashlib.sha256).hexdigest()
        assert headers["X-Modelcapsule-Signature"] == expected
        event = json.loads(body)["event"]
        assert (event["kind"], event["name"], event["alias"], event["to_version"], event["reason"]) == (
            "alias_set", "fraud", "champion", 1, "first")
        log = reg.deliveries(hook.id)
        attempts = [(d.attempt, d.ok, d.status) for d in reversed(log)]
        assert attempts == [(1, False, 500), (2, False, 500), (3, True, 204)]


def test_an_unreachable_receiver_is_logged_and_the_registry_carries_on(tmp_path: Path, capsules: Capsules) -> None:
    dead = Receiver()
    url = dead.url
    dead.close()
    with Registry(tmp_path / "reg") as reg:
        backend = fast_retries(reg)
        backend.dispatcher.attempts = 2
        reg.add_webhook(url, "s3cret")
        assert reg.register("fraud", capsules.a).version == 1
        assert backend.dispatcher.flush(30)
        log = reg.deliveries()
        assert [d.ok for d in log] == [False, False] and all(d.error for d in log)


def test_webhook_commands_add_and_show_the_delivery_log(tmp_path: Path, capsules: Capsules, receiver: Receiver,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MODELCAPSULE_REGISTRY", str(tmp_path / "reg"))
    receiver.failures = 0
    assert CliRunner().invoke(cli, ["registry", "init"]).exit_code == 0
    added = CliRunner().invoke(cli, ["registry", "webhook", "add", receiver.url, "--secret", "s3cret", "--json"])
    assert added.exit_code == 0, added.output
    registered = CliRunner().invoke(cli, ["register", str(capsules.a), "fraud"])
    assert registered.exit_code == 0, registered.output
    assert len(receiver.received) == 1  # the command waited for the delivery before exiting
    log = CliRunner().invoke(cli, ["registry", "webhook", "log", "--json"])
    assert [(d["attempt"], d["ok"], d["status"]) for d in json.loads(log.output)["deliveries"]] == [(1, True, 204)]
    assert "204" in CliRunner().invoke(cli, ["registry", "webhook", "log"]).output
    bad = CliRunner().invoke(cli, ["registry", "webhook", "add", "ftp://x", "--secret", "s"])
    assert bad.exit_code == 2 and "http:// or https://" in bad.output
