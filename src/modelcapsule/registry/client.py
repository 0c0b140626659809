"""``mc.Registry("http://host:port", token=…)``: the same API over the REST server, with the standard library's
HTTP client (no extra dependency). Uploads stream from disk; downloads land in the user's cache under their
digest and are hash-checked before use. Error responses are raised as the exception the server raised."""

from __future__ import annotations

import http.client
import json
import os
import urllib.parse
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from ..core.cachedir import user_cache_dir
from ..errors import IntegrityError
from .blobs import BlobStore, hash_file
from .errors import RegistryError, from_wire
from .packing import capsule_file
from .refs import parse_ref
from .types import AliasEvent, Delivery, Model, ModelVersion, SearchPage, TokenInfo, Webhook

__all__ = ["HttpRegistry"]

_q = urllib.parse.quote


class HttpRegistry:
    """A registry behind ``capsule registry serve``."""

    def __init__(self, url: str, *, token: str | None = None, timeout_s: float = 300.0,
                 cache_dir: str | os.PathLike[str] | None = None) -> None:
        parsed = urllib.parse.urlsplit(url)
        if parsed.scheme not in ("http", "https") or not parsed.hostname:
            raise ValueError(f"{url!r} is not an http(s):// registry URL")
        self.url, self.token, self.timeout_s = url.rstrip("/"), token, timeout_s
        self._parsed = parsed
        self.cache = BlobStore(cache_dir if cache_dir is not None else user_cache_dir("registry"))

    def close(self) -> None:
        """Nothing to release: each call opens its own connection."""

    # ----------------------------------------------------------------------------------- transport

    def _connection(self) -> http.client.HTTPConnection:
        cls = http.client.HTTPSConnection if self._parsed.scheme == "https" else http.client.HTTPConnection
        return cls(self._parsed.hostname or "", self._parsed.port, timeout=self.timeout_s)

    def _headers(self, extra: Mapping[str, str] | None = None) -> dict[str, str]:
        headers = {"Accept": "application/json", "User-Agent": "modelcapsule-registry-client"}
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        headers.update(extra or {})
        return headers

    def _path(self, path: str, query: list[tuple[str, str]] | None = None) -> str:
        base = self._parsed.path.rstrip("/") + path
        return base + ("?" + urllib.parse.urlencode(query) if query else "")

    def _call(self, method: str, path: str, body: Any = None, *, query: list[tuple[str, str]] | None = None,
              stream: Any = None, headers: Mapping[str, str] | None = None) -> Any:
        connection = self._connection()
        try:
            if stream is not None:
                connection.request(method, self._path(path, query), body=stream, headers=self._headers(headers))
            else:
                data = None if body is None else json.dumps(body).encode()
                extra = {"Content-Type": "application/json"} if data is not None else {}
                connection.request(method, self._path(path, query), body=data, headers=self._headers(extra))
            response = connection.getresponse()
            raw = response.read()
        except OSError as exc:
            raise RegistryError(f"cannot reach the registry at {self.url}: {exc}") from exc
        finally:
            connection.close()
        if response.status >= 400:
            self._raise(response.status, raw)
        return json.loads(raw) if raw else None

    def _raise(self, status: int, raw: bytes) -> None:
        try:
            error = json.loads(raw)["error"]
            code, message = str(error["code"]), str(error["message"])
        except (ValueError, KeyError, TypeError):
            code, message = "http_error", f"HTTP {status} from {self.url}: {raw[:200]!r}"
        raise from_wire(status, code, message)

    # ----------------------------------------------------------------------------------- registration

    def register(self, name: str, path: str | os.PathLike[str], *, tags: Mapping[str, str] | None = None,
                 description: str = "", alias: str | None = None, trusted: Iterable[str] = (),
                 parent: str | None = None, model_tags: Mapping[str, str] | None = None) -> ModelVersion:
        query = [("tag", f"{k}={v}") for k, v in (tags or {}).items()] + [("trust", n) for n in trusted]
        query += [(k, v) for k, v in (("description", description), ("alias", alias), ("parent", parent)) if v]
        with capsule_file(path) as source, open(source, "rb") as fh:
            data = self._call("POST", f"/api/v1/models/{_q(name)}/versions", query=query, stream=fh, headers={
                "Content-Type": "application/octet-stream", "Content-Length": str(source.stat().st_size)})
        version = ModelVersion.from_dict(data)
        if model_tags:
            self.set_tags(name, model_tags)
        return version

    # ----------------------------------------------------------------------------------- reads

    def get(self, ref: str) -> ModelVersion:
        parsed = parse_ref(ref)
        if parsed.alias is not None:
            path = f"/api/v1/models/{_q(parsed.name)}/aliases/{_q(parsed.alias)}"
        else:
            path = f"/api/v1/models/{_q(parsed.name)}/versions/{parsed.version or 'latest'}"
        return ModelVersion.from_dict(self._call("GET", path))

    def model(self, name: str) -> Model:
        return Model.from_dict(self._call("GET", f"/api/v1/models/{_q(name)}"))

    def models(self, pattern: str | None = None) -> list[Model]:
        data = self._call("GET", "/api/v1/models", query=[("pattern", pattern)] if pattern else None)
        return [Model.from_dict(m) for m in data["models"]]

    def versions(self, name: str) -> list[ModelVersion]:
        return [ModelVersion.from_dict(v) for v in self._call("GET", f"/api/v1/models/{_q(name)}/versions")["versions"]]

    def search(self, *, name: str | None = None, tags: Mapping[str, str] | None = None, max_results: int = 100,
               page_token: str | None = None) -> SearchPage:
        query = [("max_results", str(max_results))] + [("tag", f"{k}={v}") for k, v in (tags or {}).items()]
        query += [(k, v) for k, v in (("name", name), ("page_token", page_token)) if v]
        return SearchPage.from_dict(self._call("GET", "/api/v1/versions", query=query))

    def history(self, name: str, alias: str | None = None) -> list[AliasEvent]:
        path = f"/api/v1/models/{_q(name)}" + (f"/aliases/{_q(alias)}/history" if alias else "/history")
        return [AliasEvent.from_dict(e) for e in self._call("GET", path)["events"]]

    def fetch(self, ref: str) -> Path:
        """Download the version into the cache (unless a hash-checked copy is there) and return its path."""
        version = self.get(ref)
        target = self.cache.path(version.digest)
        if target.is_file() and hash_file(target) == version.digest:
            return target
        connection = self._connection()
        try:
            connection.request("GET", self._path(f"/api/v1/models/{_q(version.name)}/versions/{version.version}"
                                                 "/capsule"), headers=self._headers())
            response = connection.getresponse()
            if response.status >= 400:
                self._raise(response.status, response.read())
            staged = self.cache.stage_stream(response)  # type: ignore[arg-type]
        finally:
            connection.close()
        if staged.digest != version.digest:
            self.cache.discard(staged)
            raise IntegrityError(f"the capsule of {version.ref} downloaded from {self.url} hashes to {staged.digest}, "
                                 f"not {version.digest}; it was altered in transit or on the server.")
        target.unlink(missing_ok=True)
        return self.cache.commit(staged)

    # ----------------------------------------------------------------------------------- writes

    def set_alias(self, name: str, alias: str, version: int, *, reason: str = "") -> AliasEvent:
        return AliasEvent.from_dict(self._call("PUT", f"/api/v1/models/{_q(name)}/aliases/{_q(alias)}",
                                               {"version": version, "reason": reason}))

    def rollback(self, name: str, alias: str, *, reason: str = "") -> AliasEvent:
        return AliasEvent.from_dict(self._call("POST", f"/api/v1/models/{_q(name)}/aliases/{_q(alias)}/rollback",
                                               {"reason": reason}))

    def delete_alias(self, name: str, alias: str, *, reason: str = "") -> AliasEvent:
        return AliasEvent.from_dict(self._call("DELETE", f"/api/v1/models/{_q(name)}/aliases/{_q(alias)}",
                                               {"reason": reason}))

    def protect(self, name: str, alias: str, *, protected: bool = True, reason: str = "") -> AliasEvent:
        return AliasEvent.from_dict(self._call("PUT" if protected else "DELETE",
                                               f"/api/v1/models/{_q(name)}/aliases/{_q(alias)}/protection",
                                               {"reason": reason}))

    def delete(self, name: str, version: int, *, reason: str = "") -> AliasEvent:
        return AliasEvent.from_dict(self._call("DELETE", f"/api/v1/models/{_q(name)}/versions/{version}",
                                               {"reason": reason}))

    def set_tags(self, name: str, tags: Mapping[str, str], *, version: int | None = None) -> None:
        path = f"/api/v1/models/{_q(name)}" + (f"/versions/{version}" if version is not None else "") + "/tags"
        self._call("PUT", path, {"tags": dict(tags)})

    def delete_tag(self, name: str, key: str, *, version: int | None = None) -> None:
        path = f"/api/v1/models/{_q(name)}" + (f"/versions/{version}" if version is not None else "")
        self._call("DELETE", f"{path}/tags/{_q(key)}")

    def record_event(self, name: str, kind: str, *, alias: str | None = None, from_version: int | None = None,
                     to_version: int | None = None, reason: str = "") -> AliasEvent:
        body = {"kind": kind, "alias": alias, "from_version": from_version, "to_version": to_version, "reason": reason}
        return AliasEvent.from_dict(self._call("POST", f"/api/v1/models/{_q(name)}/events", body))

    # ----------------------------------------------------------------------------------- access

    def create_token(self, name: str, role: str) -> str:
        return str(self._call("POST", "/api/v1/tokens", {"name": name, "role": role})["token"])

    def revoke_token(self, name: str) -> None:
        self._call("DELETE", f"/api/v1/tokens/{_q(name)}")

    def tokens(self) -> list[TokenInfo]:
        return [TokenInfo(**t) for t in self._call("GET", "/api/v1/tokens")["tokens"]]

    def add_webhook(self, url: str, secret: str, events: list[str] | None = None) -> Webhook:
        return Webhook(**self._call("POST", "/api/v1/webhooks", {"url": url, "secret": secret, "events": events}))

    def webhooks(self) -> list[Webhook]:
        return [Webhook(**w) for w in self._call("GET", "/api/v1/webhooks")["webhooks"]]

    def remove_webhook(self, hook_id: int) -> None:
        self._call("DELETE", f"/api/v1/webhooks/{hook_id}")

    def deliveries(self, hook_id: int | None = None, limit: int = 100) -> list[Delivery]:
        query = [("limit", str(limit))] + ([("webhook", str(hook_id))] if hook_id is not None else [])
        return [Delivery(**d) for d in self._call("GET", "/api/v1/webhooks/deliveries", query=query)["deliveries"]]


