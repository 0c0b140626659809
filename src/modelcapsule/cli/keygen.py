"""``capsule keygen -o KEY``: create an Ed25519 key pair for signing capsules."""

from __future__ import annotations

import json
from pathlib import Path

import click

from ..security.signing import key_id, load_private_key, write_keypair


@click.command("keygen")
@click.option("-o", "--output", "output", required=True, type=click.Path(dir_okay=False, path_type=Path),
              help="Where to write the private key; the public key goes to OUTPUT.pub.")
@click.option("--overwrite", is_flag=True, help="Replace existing key files.")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON object instead of text.")
def command(output: Path, overwrite: bool, as_json: bool) -> None:
    """Create an Ed25519 key pair: OUTPUT (private, PEM, readable by you only) and OUTPUT.pub (public).

    Keep the private key secret; give the .pub file to whoever loads your capsules
    (`capsule verify PATH --public-key OUTPUT.pub`, or `modelcapsule.load(..., public_key=...)`).
    """
    try:
        private_path, public_path = write_keypair(output, overwrite=overwrite)
    except FileExistsError as exc:
        raise click.UsageError(str(exc)) from None
    kid = key_id(load_private_key(private_path))
    if as_json:
        click.echo(json.dumps({"private_key": str(private_path), "public_key": str(public_path),
                               "key_id": kid}))
        return
    click.echo(f"private key: {private_path} (mode 0600, keep it secret)")
    click.echo(f"public key:  {public_path}")
    click.echo(f"key id:      {kid}")
