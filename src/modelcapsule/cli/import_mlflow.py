"""``capsule import-mlflow URI OUT.capsule [--trust NAME]... [--tracking-uri URI]``: an MLflow model
becomes a capsule, read only by modelcapsule's restricted readers.

URI is a local MLflow model directory, ``runs:/RUN_ID/PATH``, ``models:/NAME/VERSION`` or
``models:/NAME@ALIAS``. Trust lists written inside the MLflow model are ignored (and said so); only
``--trust`` adds names to the default policy. Exit codes: 0 imported, 1 refused (untrusted names, code
in the payload, unsupported flavor, corrupt model), 2 usage error.
"""

from __future__ import annotations

import click

from ._common import emit_json, fail, json_option, reported_errors, trust_option

__all__ = ["command"]


def _report_lines(report: object) -> list[str]:
    from ..integrations.mlflow.importer import ImportReport

    assert isinstance(report, ImportReport)
    m = report.manifest
    lines = [f"wrote {report.path}: {report.flavor} model from {report.payload} (read as {report.reader}), "
             f"stored as {m.format_name}"]
    for key, names in report.ignored_trust_lists.items():
        lines.append(f"ignored the trust list in MLmodel ({key}: {', '.join(names)}): only modelcapsule's "
                     "defaults and --trust apply")
    if report.ignored_code_paths:
        lines.append(f"ignored the model's code paths ({', '.join(report.ignored_code_paths)}): never imported")
    if m.sample is not None:
        lines.append("golden sample: the MLflow input example, with outputs computed at import")
    lines.append("signature: " + ("recorded" if m.signature is not None else "none (MLflow had none)"))
    if report.requirements:
        lines.append(f"requirements: {len(report.requirements)} pins from the MLflow environment files")
    if report.left_behind:
        lines.append(f"left behind (not exact pins): {', '.join(report.left_behind)}")
    run = m.provenance.get("mlflow", {}).get("run")
    if run:
        lines.append(f"provenance: run {run['run_id']} of experiment {run.get('experiment_name')!r}, "
                     f"{len(report.metrics)} metric(s)")
    lines += [f"note: {n}" for n in report.notes]
    return lines


@click.command("import-mlflow")
@click.argument("uri")
@click.argument("out", type=click.Path(dir_okay=False))
@trust_option
@click.option("--tracking-uri", "tracking_uri", metavar="URI",
              help="MLflow tracking server (also its registry) for runs:/ and models:/ URIs, run metrics.")
@click.option("--name", "name", help="Capsule name (default: the registered model's or the directory's).")
@click.option("--overwrite", is_flag=True, help="Replace OUT if it exists.")
@json_option
def command(uri: str, out: str, trusted: tuple[str, ...], tracking_uri: str | None, name: str | None,
            overwrite: bool, as_json: bool) -> None:
    """Import the MLflow model at URI into the capsule OUT, safely.

    URI is a local MLflow model directory, runs:/RUN_ID/PATH, models:/NAME/VERSION or models:/NAME@ALIAS.
    The payload is read only by modelcapsule's restricted readers; trust lists written inside the MLflow
    model are ignored (and reported): only the defaults and --trust count."""
    from ..integrations.mlflow.importer import import_mlflow

    with reported_errors():
        try:
            report = import_mlflow(uri, out, trusted=trusted, tracking_uri=tracking_uri, name=name,
                                   overwrite=overwrite)
        except ValueError as exc:  # a malformed --trust name
            if type(exc) is ValueError:
                fail(str(exc), 2)
            raise
        except Exception as exc:  # MLflow's own errors (unknown run, model or alias; unreachable server)
            if not type(exc).__module__.startswith("mlflow"):
                raise
            fail(f"MLflow could not provide {uri}: {exc}")
    if as_json:
        emit_json(report.to_dict())
        return
    for line in _report_lines(report):
        click.echo(line)


@click.command("import-mlflow")
@click.option("--tracking-uri", "tracking_uri", required=True, metavar="URI",
              help="MLflow tracking server whose model registry is copied.")
@click.option("--model", "models", multiple=True, metavar="NAME", help="Only this registered model (repeatable).")
@trust_option
@click.option("--registry", "location", envvar="MODELCAPSULE_REGISTRY", metavar="R",
              help="modelcapsule registry: a directory, a database URL or an http(s):// server "
                   "[env MODELCAPSULE_REGISTRY].")
@click.option("--store", envvar="MODELCAPSULE_STORE", metavar="DIR", help="Blob directory of a database-URL registry.")
@click.option("--token", envvar="MODELCAPSULE_TOKEN", metavar="TOKEN", help="Bearer token for an http(s):// registry.")
@json_option
def registry_command(tracking_uri: str, models: tuple[str, ...], trusted: tuple[str, ...], location: str | None,
                     store: str | None, token: str | None, as_json: bool) -> None:
    """Copy MLflow's registered models, versions, tags and aliases into the modelcapsule registry.

    Each version is converted like `capsule import-mlflow` (restricted readers only); one that cannot be
    converted safely is reported and skipped. Re-running imports only what is new. Exit code 1 when
    something was skipped."""
    from ..integrations.mlflow.registry_import import import_registry
    from ..registry import Registry

    with reported_errors():
        registry = Registry(location, store=store, token=token)
        try:
            report = import_registry(tracking_uri, registry, models=models, trusted=trusted)
        except Exception as exc:  # MLflow's own errors (unknown model, unreachable server)
            if not type(exc).__module__.startswith("mlflow"):
                raise
            fail(f"MLflow could not provide the registry at {tracking_uri}: {exc}")
        finally:
            registry.close()
    if as_json:
        emit_json(report.to_dict())
    else:
        for name, versions in report.imported.items():
            pairs = ", ".join(f"v{m} → v{c}" for m, c in versions.items())
            click.echo(f"imported {name}: {pairs}")
        for name, versions in report.already.items():
            click.echo(f"already imported {name}: {', '.join(f'v{m}' for m in versions)}")
        for name, aliases in report.aliases.items():
            click.echo(f"aliases of {name}: {', '.join(f'{a} → v{v}' for a, v in aliases.items())}")
        for name, reasons in report.skipped.items():
            for version, reason in reasons.items():
                click.echo(f"skipped {name} v{version}: {reason}", err=True)
        for problem in report.alias_problems:
            click.echo(f"alias not set: {problem}", err=True)
    if not report.ok:
        raise SystemExit(1)
