"""Webhooks: a signed JSON POST per event to every subscribed URL, retried with backoff, every attempt logged.

The body is the event as JSON; ``X-Modelcapsule-Signature: sha256=<hex>`` is the HMAC-SHA256 of the body
under the webhook's secret (which is why the secret is kept as given, unlike tokens). Deliveries run on
a background thread after the event's transaction committed, so a slow receiver never holds a lock.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import queue
import threading
import time
import urllib.error
import urllib.request
from typing import Any

import sqlalchemy as sa

from . import schema as t
from .actors import Actor
from .database import writing
from .errors import RegistryError
from .store import now
from .types import AliasEvent, Delivery, Webhook

__all__ = ["SIGNATURE_HEADER", "Dispatcher", "add_webhook", "deliveries", "list_webhooks", "remove_webhook", "sign"]

SIGNATURE_HEADER = "X-Modelcapsule-Signature"
EVENT_KINDS = ("registered", "version_deleted", "alias_set", "alias_rollback", "alias_deleted", "alias_protected",
               "alias_unprotected", "serving_failed")


def sign(secret: str, body: bytes) -> str:
    """The signature header value of ``body``: ``sha256=<hex HMAC>``."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def add_webhook(engine: sa.Engine, actor: Actor, url: str, secret: str, events: list[str] | None = None) -> Webhook:
    actor.require("admin", "adding webhooks")
    if not url.startswith(("http://", "https://")) or len(url) > 2048:
        raise ValueError(f"webhook URL {url!r} must start with http:// or https:// (at most 2048 characters)")
    if not secret:
        raise ValueError("a webhook needs a secret: receivers check the signature made with it")
    unknown = sorted(set(events or ()) - set(EVENT_KINDS))
    if unknown:
        raise ValueError(f"unknown event kind(s) {', '.join(unknown)}; known: {', '.join(EVENT_KINDS)}")
    created = now()
    with writing(engine) as connection:
        hook_id = connection.execute(sa.insert(t.webhooks).values(url=url, secret=secret, events=list(events or []),
                                                                  created_at=created, active=True)
                                     .returning(t.webhooks.c.id)).scalar_one()
    return Webhook(hook_id, url, list(events or []), created, True)


def list_webhooks(engine: sa.Engine, actor: Actor) -> list[Webhook]:
    actor.require("admin", "listing webhooks")
    with engine.connect() as connection:
        return [Webhook(r.id, r.url, list(r.events), r.created_at, r.active)
                for r in connection.execute(sa.select(t.webhooks).order_by(t.webhooks.c.id))]


def remove_webhook(engine: sa.Engine, actor: Actor, hook_id: int) -> None:
    actor.require("admin", "removing webhooks")
    with writing(engine) as connection:
        if not connection.execute(sa.update(t.webhooks).where(t.webhooks.c.id == hook_id, t.webhooks.c.active)
                                  .values(active=False)).rowcount:
            raise RegistryError(f"no active webhook {hook_id}; `capsule registry webhook list` shows them")


def deliveries(engine: sa.Engine, actor: Actor, hook_id: int | None = None, limit: int = 100) -> list[Delivery]:
    """The delivery log, newest first."""
    actor.require("admin", "reading the webhook delivery log")
    query = sa.select(t.deliveries).order_by(t.deliveries.c.id.desc()).limit(limit)
    if hook_id is not None:
        query = query.where(t.deliveries.c.webhook_id == hook_id)
    with engine.connect() as connection:
        return [Delivery(r.id, r.webhook_id, r.event_id, r.attempt, r.at, r.ok, r.status, r.error)
                for r in connection.execute(query)]


class Dispatcher:
    """Delivers events to webhooks on one background thread; ``flush`` waits until the queue is empty."""

    def __init__(self, engine: sa.Engine, *, attempts: int = 5, backoff_s: float = 0.5,
                 timeout_s: float = 10.0) -> None:
        self.engine, self.attempts, self.backoff_s, self.timeout_s = engine, attempts, backoff_s, timeout_s
        self._queue: queue.Queue[tuple[AliasEvent, Any]] = queue.Queue()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    def __call__(self, event: AliasEvent) -> None:
        with self.engine.connect() as connection:
            hooks = connection.execute(sa.select(t.webhooks).where(t.webhooks.c.active)).all()
        for hook in hooks:
            if not hook.events or event.kind in hook.events:
                self._queue.put((event, hook))
                self._start()

    def _start(self) -> None:
        with self._lock:
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, name="registry-webhooks", daemon=True)
                self._thread.start()

    def flush(self, timeout_s: float = 30.0) -> bool:
        """Wait for pending deliveries (at most ``timeout_s``); True when none is left."""
        deadline = time.monotonic() + timeout_s
        while self._queue.unfinished_tasks and time.monotonic() < deadline:
            time.sleep(0.02)
        return not self._queue.unfinished_tasks

    def _run(self) -> None:
        while True:
            try:
                event, hook = self._queue.get(timeout=1.0)
            except queue.Empty:
                return
            try:
                self._deliver(event, hook)
            finally:
                self._queue.task_done()

    def _deliver(self, event: AliasEvent, hook: Any) -> None:
        body = json.dumps({"event": event.to_dict()}, sort_keys=True).encode()
        for attempt in range(1, self.attempts + 1):
            status, error = None, ""
            headers = {"Content-Type": "application/json", SIGNATURE_HEADER: sign(hook.secret, body),
                       "X-Modelcapsule-Event": event.kind, "User-Agent": "modelcapsule-registry"}
            # add_webhook admits http(s) URLs only
            request = urllib.request.Request(hook.url, data=body, method="POST", headers=headers)  # noqa: S310
            try:
                with urllib.request.urlopen(request, timeout=self.timeout_s) as response:  # noqa: S310
                    status = response.status
            except urllib.error.HTTPError as exc:
                status, error = exc.code, f"HTTP {exc.code}"
            except (urllib.error.URLError, OSError) as exc:
                error = str(getattr(exc, "reason", exc))
            ok = status is not None and 200 <= status < 300
            with writing(self.engine) as connection:
                connection.execute(sa.insert(t.deliveries).values(webhook_id=hook.id, event_id=event.id,
                                                                  attempt=attempt, at=now(), ok=ok, status=status,
                                                                  error=error))
            if ok:
                return
            if attempt < self.attempts:
                time.sleep(self.backoff_s * 2 ** (attempt - 1))
