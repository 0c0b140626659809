"""``capsule inspect PATH``: the manifest, read without loading the model."""

from __future__ import annotations

from typing import Any

import click

from ._common import console, emit_json, json_option, reported_errors
from ._registry import CAPSULE_ARGUMENT


def _kv_table(title: str, rows: list[tuple[str, Any]]) -> Any:
    from rich.table import Table
    from rich.text import Text

    table = Table(title=title, show_header=False, title_justify="left")
    table.add_column(style="bold")
    table.add_column()
    for key, value in rows:
        table.add_row(Text(key), Text(str(value)))  # manifest text is the file's, never rich markup
    return table


@click.command()
@click.argument("path", type=CAPSULE_ARGUMENT)  # a path, or models:/NAME@ALIAS
@json_option
def command(path: str, as_json: bool) -> None:
    """Show the manifest of the capsule at PATH: model, format, signature, environment, provenance."""
    from ..load import inspect

    with reported_errors():
        manifest = inspect(path)
    if as_json:
        emit_json(manifest.to_dict())
        return
    from rich.table import Table

    out = console()
    fmt = manifest.format
    chosen = fmt.get("chosen_by", "")
    passed = fmt.get("passed_over") or {}
    out.print(_kv_table(f"capsule {manifest.name}", [
        ("path", path), ("created", manifest.created_at), ("capsule version", manifest.capsule_version),
        ("framework", manifest.framework), ("class", manifest.model.get("class")),
        ("task", manifest.model.get("task")), ("methods", ", ".join(manifest.model.get("methods", []))),
        ("format", f"{manifest.format_name} ({chosen})" if chosen else manifest.format_name),
        *[(f"passed over: {k}", v) for k, v in passed.items()],
        ("members", f"{len(manifest.files)} ({sum(f.size for f in manifest.files.values()):,} bytes)"),
        ("golden sample", "yes" if manifest.sample else "no"),
        ("onnx export", "yes" if manifest.onnx else "no"),
    ]))
    if manifest.signature is not None:
        from rich.text import Text

        sig = Table(title="signature", title_justify="left")
        for col in ("", "name", "dtype", "shape", "columns"):
            sig.add_column(col)
        for kind, specs in (("input", manifest.signature.inputs), ("output", manifest.signature.outputs)):
            for spec in specs:
                cols = ""
                if spec.columns:
                    cols = ", ".join(f"{c.name}:{c.dtype}" for c in spec.columns[:6])
                    cols += f", … ({len(spec.columns) - 6} more)" if len(spec.columns) > 6 else ""
                sig.add_row(*(Text(cell) for cell in (kind, spec.name, spec.dtype, str(list(spec.shape)), cols)))
        out.print(sig)
        if manifest.signature.classes is not None:
            out.print(f"classes: {list(manifest.signature.classes)}", markup=False)
    env = manifest.environment
    out.print(_kv_table("environment", [
        ("python", f"{env.get('python')} ({env.get('implementation')}, {env.get('platform')} {env.get('machine')})"),
        *[(name, version) for name, version in (env.get("packages") or {}).items()],
    ]))
    prov = manifest.provenance
    rows: list[tuple[str, Any]] = []
    if src := prov.get("source"):
        rows.append(("source", f"{src.get('path')} sha256:{str(src.get('sha256'))[:12]}…"
                     + (f" git {str(src['git_commit'])[:10]}" if src.get("git_commit") else "")))
    if data := prov.get("training_data"):
        rows.append(("training data", f"{data.get('n_samples')}×{data.get('n_features')} {data.get('fingerprint')}"))
    for name, value in (prov.get("metrics") or {}).items():
        rows.append((f"metric {name}", value))
    for key, value in manifest.metadata.items():
        rows.append((f"metadata {key}", value))
    if rows:
        out.print(_kv_table("provenance", rows))
