"""``capsule registry init|upgrade|check|gc|serve|token|webhook|delete``: running a registry."""

from __future__ import annotations

import click

from ._common import EXIT_CHECK_FAILED, EXIT_USAGE, console, emit_json, fail, json_option
from ._registry import open_registry, print_table, registry_errors, registry_options
from .import_mlflow import registry_command


@click.group()
def command() -> None:
    """Create, upgrade, check, clean and serve a model registry; manage its tokens and webhooks."""


def _local(reg: object) -> object:
    from ..registry.local import LocalRegistry

    backend = getattr(reg, "backend", None)
    if not isinstance(backend, LocalRegistry):
        fail("this needs direct access to the registry's database and blobs; run it where they live, with "
             "--registry DIR or a database URL (and --store DIR)", EXIT_USAGE)
    return backend


@command.command()
@registry_options
@json_option
def init(location: str | None, store: str | None, token: str | None, as_json: bool) -> None:
    """Create a registry at the current schema (a directory, or a database URL with --store)."""
    with open_registry(location, store, token, create=True) as reg:
        where = reg.location
    if as_json:
        emit_json({"registry": where})
    else:
        click.echo(f"registry ready: {where}")


@command.command()
@registry_options
def upgrade(location: str | None, store: str | None, token: str | None) -> None:
    """Migrate the registry's database to this modelcapsule's schema (back it up first)."""
    from ..registry.database import HEAD, current_revision
    from ..registry.database import upgrade as run_upgrade
    from ..registry.local import LocalRegistry
    from ..registry.service import resolve_location

    with registry_errors():
        url, blob_dir = resolve_location(location, store)
        if blob_dir is None:
            fail("upgrade the server's own database: run this where `capsule registry serve` runs", EXIT_USAGE)
        backend = LocalRegistry(url, blob_dir, check_schema=False)
        before = current_revision(backend.engine)
        run_upgrade(backend.engine)
        backend.close()
    click.echo(f"schema {before or '(new)'} → {HEAD}" if before != HEAD else f"already at {HEAD}")


@command.command()
@registry_options
@json_option
def check(location: str | None, store: str | None, token: str | None, as_json: bool) -> None:
    """Verify every version against its blob and every blob's hash; exit 1 on any problem."""
    with open_registry(location, store, token) as reg, registry_errors():
        report = _local(reg).check()  # type: ignore[attr-defined]
    if as_json:
        emit_json(report.to_dict())
    else:
        from rich.markup import escape

        out = console()
        out.print(f"checked {report.checked} blob(s) named by versions")
        for warning in report.warnings:
            out.print(f"[yellow]warning[/yellow] {escape(warning)}")
        for error in report.errors:
            out.print(f"[red]✗[/red] {escape(error)}")
        out.print("[green]OK[/green]" if report.ok else "[red]FAILED[/red]")
    if not report.ok:
        raise SystemExit(EXIT_CHECK_FAILED)


@command.command()
@click.option("--dry-run", is_flag=True, help="List what would be removed.")
@click.option("--grace-seconds", default=3600.0, show_default=True, type=click.FloatRange(0),
              help="Keep blobs younger than this (a registration may be about to commit its row).")
@registry_options
@json_option
def gc(dry_run: bool, grace_seconds: float, location: str | None, store: str | None, token: str | None,
       as_json: bool) -> None:
    """Remove blobs that no version names."""
    with open_registry(location, store, token) as reg, registry_errors():
        removed = _local(reg).gc(dry_run=dry_run, grace_s=grace_seconds)  # type: ignore[attr-defined]
    if as_json:
        emit_json({"removed": [] if dry_run else removed, "would_remove": removed if dry_run else []})
    else:
        verb = "would remove" if dry_run else "removed"
        click.echo(f"{verb} {len(removed)} blob(s)" + "".join(f"\n  {d}" for d in removed))


@command.command()
@click.argument("name")
@click.argument("version", type=click.IntRange(1))
@click.option("--reason", default="")
@registry_options
def delete(name: str, version: int, reason: str, location: str | None, store: str | None, token: str | None) -> None:
    """Delete version VERSION of NAME (admin; refused while an alias points to it)."""
    with open_registry(location, store, token) as reg, registry_errors():
        reg.delete(name, version, reason=reason)
    click.echo(f"deleted {name}/{version}")


@command.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8090, show_default=True, type=click.IntRange(0, 65535))
@click.option("--public-read", is_flag=True, help="Answer reads without a token.")
@click.option("--max-body-bytes", default=2 << 30, show_default=True, type=click.IntRange(1),
              help="Largest upload; larger ones get 413.")
@click.option("--trust", "trusted", multiple=True, metavar="NAME",
              help="Names every registration check admits beyond the defaults (the registry's trust policy).")
@click.option("--tls-cert", type=click.Path(exists=True, dir_okay=False),
              help="PEM certificate chain: serve HTTPS (with --tls-key).")
@click.option("--tls-key", type=click.Path(exists=True, dir_okay=False), help="PEM private key of --tls-cert.")
@click.option("--tls-client-ca", type=click.Path(exists=True, dir_okay=False),
              help="PEM CA bundle: require client certificates it signed (mutual TLS).")
@registry_options
def serve(host: str, port: int, public_read: bool, max_body_bytes: int, trusted: tuple[str, ...],
          tls_cert: str | None, tls_key: str | None, tls_client_ca: str | None,
          location: str | None, store: str | None, token: str | None) -> None:
    """Serve the registry's REST API (OpenAPI at /api/v1/openapi.json), over HTTPS with --tls-cert/--tls-key."""
    import ssl

    import uvicorn

    if (tls_cert is None) != (tls_key is None) or (tls_client_ca is not None and tls_cert is None):
        raise click.UsageError("--tls-cert and --tls-key go together (and --tls-client-ca needs them).")

    from ..registry import Registry
    from ..registry.api import create_app

    with registry_errors():
        reg = Registry(location, store=store, trusted=trusted, create=True)
    backend = _local(reg)
    app = create_app(backend, public_read=public_read, max_body=max_body_bytes)  # type: ignore[arg-type]
    if public_read:  # the pages read what the API reads; a browser sends no bearer token, so only then
        from ..ui.pages import routes as ui_routes
        from ..ui.registry_source import RegistrySource

        app.router.routes.extend(ui_routes(RegistrySource(reg)))
    access = "public reads, pages at /" if public_read else "every request needs a token; pages with --public-read"
    scheme = "https" if tls_cert else "http"
    click.echo(f"registry {reg.location} on {scheme}://{host}:{port}/api/v1 ({access})")
    uvicorn.run(app, host=host, port=port, log_level="warning", ssl_certfile=tls_cert, ssl_keyfile=tls_key,
                ssl_ca_certs=tls_client_ca, ssl_cert_reqs=ssl.CERT_REQUIRED if tls_client_ca else ssl.CERT_NONE)
    reg.close()


@command.group()
def token() -> None:
    """Create, list and revoke access tokens (admin)."""


@token.command("create")
@click.argument("name")
@click.option("--role", type=click.Choice(["read", "write", "admin"]), required=True)
@registry_options
@json_option
def token_create(name: str, role: str, location: str | None, store: str | None, token: str | None,
                 as_json: bool) -> None:
    """Create a token NAME with ROLE; its secret is printed this once and stored only as a hash."""
    with open_registry(location, store, token) as reg, registry_errors():
        secret = reg.create_token(name, role)
    if as_json:
        emit_json({"name": name, "role": role, "token": secret})
    else:
        click.echo(secret)
        click.echo(f"token {name!r} ({role}); shown once, keep it secret", err=True)


@token.command("list")
@registry_options
@json_option
def token_list(location: str | None, store: str | None, token: str | None, as_json: bool) -> None:
    with open_registry(location, store, token) as reg, registry_errors():
        tokens = reg.tokens()
    if as_json:
        emit_json({"tokens": [t.to_dict() for t in tokens]})
    else:
        print_table("tokens", ["name", "role", "created", "revoked"],
                    [(t.name, t.role, t.created_at, t.revoked_at or "") for t in tokens])


@token.command("revoke")
@click.argument("name")
@registry_options
def token_revoke(name: str, location: str | None, store: str | None, token: str | None) -> None:
    with open_registry(location, store, token) as reg, registry_errors():
        reg.revoke_token(name)
    click.echo(f"revoked {name}")


@command.group()
def webhook() -> None:
    """POST a signed JSON message to a URL on every event (admin)."""


@webhook.command("add")
@click.argument("url")
@click.option("--secret", required=True, help="Signs each body: X-Modelcapsule-Signature: sha256=HMAC.")
@click.option("--events", "events", multiple=True, metavar="KIND", help="Only these kinds (repeatable; default all).")
@registry_options
@json_option
def webhook_add(url: str, secret: str, events: tuple[str, ...], location: str | None, store: str | None,
                token: str | None, as_json: bool) -> None:
    with open_registry(location, store, token) as reg, registry_errors():
        hook = reg.add_webhook(url, secret, list(events) or None)
    if as_json:
        emit_json(hook.to_dict())
    else:
        click.echo(f"webhook {hook.id}: {hook.url} ({', '.join(hook.events) or 'every event'})")


@webhook.command("list")
@registry_options
@json_option
def webhook_list(location: str | None, store: str | None, token: str | None, as_json: bool) -> None:
    with open_registry(location, store, token) as reg, registry_errors():
        hooks = reg.webhooks()
    if as_json:
        emit_json({"webhooks": [h.to_dict() for h in hooks]})
    else:
        print_table("webhooks", ["id", "url", "events", "active"],
                    [(h.id, h.url, ", ".join(h.events) or "all", h.active) for h in hooks])


@webhook.command("remove")
@click.argument("hook_id", type=int)
@registry_options
def webhook_remove(hook_id: int, location: str | None, store: str | None, token: str | None) -> None:
    with open_registry(location, store, token) as reg, registry_errors():
        reg.remove_webhook(hook_id)
    click.echo(f"removed webhook {hook_id}")


@webhook.command("log")
@click.option("--webhook", "hook_id", type=int, help="Only this webhook's deliveries.")
@click.option("--limit", default=50, show_default=True, type=click.IntRange(1, 10_000))
@registry_options
@json_option
def webhook_log(hook_id: int | None, limit: int, location: str | None, store: str | None, token: str | None,
                as_json: bool) -> None:
    """The delivery log, newest first: each attempt, its HTTP status or error."""
    with open_registry(location, store, token) as reg, registry_errors():
        found = reg.deliveries(hook_id, limit)
    if as_json:
        emit_json({"deliveries": [d.to_dict() for d in found]})
    else:
        print_table("deliveries", ["at", "webhook", "event", "attempt", "ok", "status", "error"],
                    [(d.at, d.webhook_id, d.event_id, d.attempt, "yes" if d.ok else "no", d.status or "", d.error)
                     for d in found])



command.add_command(registry_command, "import-mlflow")  # the MLflow bridge's command; mlflow is imported when run
