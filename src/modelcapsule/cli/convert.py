"""``capsule convert SRC DST [--format F] [--trust NAME]... [--sample FILE]``: a legacy model file
(``.joblib``, ``.pkl``, ``.skops``) or a capsule becomes a safe capsule.

Exit codes: 0 converted, 1 the source needs untrusted names (run ``capsule audit SRC``) or no safe format
reproduces it, 2 usage error.
"""

from __future__ import annotations

import click

__all__ = ["command"]


@click.command("convert")
@click.argument("src", type=click.Path(exists=True, dir_okay=True))
@click.argument("dst", type=click.Path())
@click.option("--format", "fmt", default="auto", show_default=True, help="Payload format of the new capsule.")
@click.option("--trust", "trust", multiple=True, metavar="NAME",
              help="Exact module.qualname to trust beyond the defaults (see `capsule audit SRC`).")
@click.option("--sample", "sample", type=click.Path(exists=True, dir_okay=False),
              help="Golden sample rows: .npy, .csv, .parquet or .json.")
@click.option("--overwrite", is_flag=True, help="Replace DST if it exists.")
def command(src: str, dst: str, fmt: str, trust: tuple[str, ...], sample: str | None,
            overwrite: bool) -> None:
    """Load SRC through the trust policy and save it as a capsule at DST."""
    from ..convert import convert
    from ..errors import CapsuleError, UntrustedTypesError

    try:
        manifest = convert(src, dst, format=fmt, trusted=trust, sample=sample, overwrite=overwrite)
    except UntrustedTypesError as exc:
        click.echo(f"error: {exc}\nRun `capsule audit {src}` to review the names.", err=True)
        raise SystemExit(1) from None
    except FileExistsError as exc:
        raise click.UsageError(str(exc)) from None
    except ValueError as exc:
        if not isinstance(exc, CapsuleError):
            raise click.UsageError(str(exc)) from None
        click.echo(f"error: {exc}", err=True)
        raise SystemExit(1) from None
    except CapsuleError as exc:
        click.echo(f"error: {exc}", err=True)
        raise SystemExit(1) from None
    chosen = manifest.format.get("chosen_by", "user")
    click.echo(f"wrote {dst}: format {manifest.format_name} (chosen by {chosen})")
    for name, reason in (manifest.format.get("passed_over") or {}).items():
        click.echo(f"  passed over {name}: {reason}")
    click.echo("golden sample: " + ("recorded" if manifest.sample else "none (pass --sample FILE)"))
