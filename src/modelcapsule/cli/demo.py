"""``capsule demo``: the whole path in one command — train, save, reload, verify, serve."""

from __future__ import annotations

import json
import time
from pathlib import Path

import click

from ._common import console


def train_and_save(directory: Path) -> tuple[Path, list[float]]:
    """Train a small pipeline on a dataset that ships with scikit-learn and save it as a capsule."""
    import numpy as np
    from sklearn.datasets import load_breast_cancer
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import cross_val_score, train_test_split
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    from ..save import save

    # Plain arrays, not a DataFrame: the demo needs only the `serve` extra, which has no pandas.
    x, y = load_breast_cancer(return_X_y=True)
    x_train, x_test, y_train, _y_test = train_test_split(x, y, random_state=0)
    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000))
    scores = cross_val_score(model, x_train, y_train, cv=5)
    model.fit(x_train, y_train)
    path = directory / "breast-cancer" / "1" / "model.capsule"
    path.parent.mkdir(parents=True, exist_ok=True)
    save(model, path, sample=x_test[:20], training_data=(x_train, y_train), metrics={"cv_accuracy": scores},
         metadata={"owner": "demo", "dataset": "sklearn.datasets.load_breast_cancer"}, name="breast-cancer",
         source=__file__, overwrite=True)
    out = console()
    out.print(f"[bold]1. trained[/bold] StandardScaler + LogisticRegression, 5-fold CV accuracy "
              f"{np.mean(scores):.3f} ± {np.std(scores):.3f}")
    out.print(f"[bold]2. saved[/bold]   {path} ({path.stat().st_size:,} bytes) with a golden sample of 20 rows, "
              "the training-data fingerprint, CV scores and the environment")
    return path, [round(float(v), 4) for v in x_test[0]]


def reload_and_verify(path: Path) -> None:
    from ..load import load_capsule
    from ..verify import verify

    start = time.perf_counter()
    loaded = load_capsule(path)
    elapsed = time.perf_counter() - start
    out = console()
    out.print(f"[bold]3. loaded[/bold]  {loaded.manifest.model['class']} in {elapsed * 1000:.1f} ms through the "
              f"restricted unpickler (format {loaded.manifest.format_name}); golden sample re-checked")
    report = verify(path)
    status = "[green]all checks pass[/green]" if report.ok else "[red]FAILED[/red]"
    out.print(f"[bold]4. verified[/bold] hashes {report.hashes}, signature {report.signature}, "
              f"drift {len(report.drift)} package(s), golden sample "
              f"{', '.join(f'{k} {v}' for k, v in report.sample.items())}: {status}")


def curl_line(host: str, port: int, row: list[float]) -> str:
    """A ready-to-paste request for the plain ``/predict`` route, with one real row of the test set."""
    body = json.dumps({"inputs": [row]})
    return f"curl -s -X POST http://{host}:{port}/predict -H 'Content-Type: application/json' -d '{body}'"


@click.command()
@click.option("--dir", "directory", type=click.Path(file_okay=False), default="demo-models", show_default=True,
              help="Model repository to write (<name>/<version>/model.capsule).")
@click.option("--serve/--no-serve", default=True, show_default=True, help="Serve the model at the end.")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8080, show_default=True, type=int)
@click.option("--grpc-port", default=8081, show_default=True, type=int)
@click.pass_context
def command(ctx: click.Context, directory: str, serve: bool, host: str, port: int, grpc_port: int) -> None:
    """Train a model on a scikit-learn dataset, save it as a capsule, reload, verify and serve it."""
    root = Path(directory)
    path, row = train_and_save(root)
    reload_and_verify(path)
    out = console()
    if not serve:
        out.print(f"Serve it with: capsule serve {root}")
        return
    from .serve import command as serve_command
    from .serve import grpc_port_if_installed

    out.print(f"[bold]5. serving[/bold] {root} on http://{host}:{port} (Ctrl-C to stop). Try:")
    click.echo(curl_line(host, port, row))
    served_grpc_port = grpc_port_if_installed(ctx, grpc_port)
    ctx.invoke(serve_command, paths=(str(root),), host=host, port=port, grpc_port=grpc_port,
               no_grpc=served_grpc_port is None)
