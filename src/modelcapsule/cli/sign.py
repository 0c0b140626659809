"""``capsule sign PATH --key KEY``: add (or replace) a capsule's detached Ed25519 signature."""

from __future__ import annotations

import json
from pathlib import Path

import click

from ..errors import CapsuleError
from ..security.signing import sign_capsule


@click.command("sign")
@click.argument("path", type=click.Path(exists=True, path_type=Path))
@click.option("--key", "key", required=True, type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="The private key written by `capsule keygen`.")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON object instead of text.")
def command(path: Path, key: Path, as_json: bool) -> None:
    """Sign the capsule at PATH with the private KEY, in place.

    Every member's hash is checked first; the signature covers the manifest, which hashes every member,
    so any later change to any member makes verification fail.
    """
    try:
        kid = sign_capsule(path, key)
    except CapsuleError as exc:
        raise click.ClickException(str(exc)) from None
    if as_json:
        click.echo(json.dumps({"path": str(path), "signed": True, "key_id": kid}))
        return
    click.echo(f"signed {path} (key id {kid[:16]}…)")
