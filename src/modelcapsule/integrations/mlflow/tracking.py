"""Where an MLflow model lives and what the tracking server knows about it.

A URI is a local MLflow model directory, ``runs:/RUN_ID/PATH``, ``models:/NAME/VERSION``,
``models:/NAME@ALIAS`` or any other artifact URI MLflow can download. MLflow is used here for two things
only: downloading the artifacts (:func:`mlflow.artifacts.download_artifacts`) and reading the run and
registry records (metrics, experiment, source, versions). The global tracking URI is never changed: every
call takes the URI it was given.
"""

from __future__ import annotations

import datetime as _dt
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ...errors import UnsupportedModelError

__all__ = ["Located", "client", "locate", "registered_version", "run_record"]

_MODELS = re.compile(r"^models:/(?P<name>[^/@]+)(?:/(?P<version>[^/]+)|@(?P<alias>[^/]+))/?$")
_RUNS = re.compile(r"^runs:/(?P<run>[^/]+)(?:/(?P<path>.*))?$")
_LOGGED = re.compile(r"^models:/(?P<id>m-[0-9a-f]+)/?$")


@dataclass
class Located:
    """A local MLflow model directory and what its URI said about it."""

    directory: Path
    uri: str
    tracking_uri: str | None
    run_id: str | None = None
    registered: dict[str, Any] | None = None
    notes: list[str] = field(default_factory=list)


def _mlflow() -> Any:
    try:
        import mlflow
    except ImportError:
        raise UnsupportedModelError(
            "reading runs:/ and models:/ URIs needs MLflow: pip install 'modelcapsule[mlflow]'. A local MLflow "
            "model directory needs no MLflow."
        ) from None
    return mlflow


def client(tracking_uri: str | None) -> Any:
    """An ``MlflowClient`` for ``tracking_uri`` (also its registry), without touching the global URI."""
    mlflow = _mlflow()
    return mlflow.MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)


def _millis(value: Any) -> str | None:
    if not isinstance(value, (int, float)) or value <= 0:
        return None
    return _dt.datetime.fromtimestamp(value / 1000, _dt.UTC).isoformat(timespec="seconds")


def registered_version(mlflow_client: Any, name: str, version: str | None, alias: str | None) -> dict[str, Any]:
    """A registry model version as plain data: name, version, run, source, description, tags, aliases."""
    if alias is not None:
        mv = mlflow_client.get_model_version_by_alias(name, alias)
    elif version == "latest":
        found = mlflow_client.search_model_versions(f"name = '{name}'")
        if not found:
            raise FileNotFoundError(f"MLflow's registry has no version of {name!r}")
        mv = max(found, key=lambda v: int(v.version))
    else:
        mv = mlflow_client.get_model_version(name, str(version))
    return {
        "name": mv.name, "version": int(mv.version), "run_id": mv.run_id or None, "source": mv.source,
        "description": mv.description or "", "tags": dict(mv.tags or {}), "aliases": list(mv.aliases or []),
        "created_at": _millis(mv.creation_timestamp),
    }


def _run_artifacts_uri(mlflow_client: Any, run_id: str, path: str) -> str:
    """Where ``runs:/RUN_ID/PATH`` lives: the run's own artifacts (MLflow 2) or, in MLflow 3, the logged
    model of that name the run produced. Resolved through ``mlflow_client`` so its tracking URI is the
    one used (MLflow's own ``runs:/`` resolver consults the global tracking URI for logged models)."""
    run = mlflow_client.get_run(run_id)
    path = path.strip("/")
    found = mlflow_client.search_logged_models(
        experiment_ids=[run.info.experiment_id],
        filter_string=f"source_run_id = '{run_id}' AND name = '{path}'",
    ) if path and "'" not in path else []
    if found:
        return str(found[0].artifact_location)
    return f"{str(run.info.artifact_uri).rstrip('/')}/{path}"


def locate(uri: str, tracking_uri: str | None, workdir: Path) -> Located:
    """Find (and, for remote URIs, download into ``workdir``) the MLflow model ``uri`` names."""
    local = Path(uri.removeprefix("file://")) if not re.match(r"^[a-z][a-z0-9+.-]*:/", uri) or uri.startswith(
        "file://") else None
    if local is not None:
        if not local.is_dir():
            raise FileNotFoundError(f"no MLflow model directory at {local}")
        return Located(local, uri, tracking_uri)
    mlflow = _mlflow()
    located = Located(workdir, uri, tracking_uri)
    artifacts = uri
    version = m.group("version") if (m := _MODELS.match(uri)) is not None else None
    if m is not None and (m.group("alias") or (version or "").isdigit() or version == "latest") and "'" not in uri:
        mlflow_client = client(tracking_uri)
        located.registered = registered_version(mlflow_client, m.group("name"), m.group("version"),
                                                m.group("alias"))
        located.run_id = located.registered["run_id"]
        artifacts = mlflow_client.get_model_version_download_uri(m.group("name"), located.registered["version"])
    elif (m := _LOGGED.match(uri)) is not None:
        logged = client(tracking_uri).get_logged_model(m.group("id"))
        located.run_id = logged.source_run_id or None
        artifacts = str(logged.artifact_location)
    elif (r := _RUNS.match(uri)) is not None:
        located.run_id = r.group("run")
        artifacts = _run_artifacts_uri(client(tracking_uri), r.group("run"), r.group("path") or "")
    path = mlflow.artifacts.download_artifacts(artifact_uri=artifacts, dst_path=str(workdir),
                                               tracking_uri=tracking_uri, registry_uri=tracking_uri)
    located.directory = Path(path)
    return located


def run_record(tracking_uri: str | None, run_id: str) -> tuple[dict[str, Any], dict[str, float]]:
    """``(provenance, metrics)`` of an MLflow run: its experiment, name, user, times, source and params,
    and the latest value of every metric it logged."""
    mlflow_client = client(tracking_uri)
    run = mlflow_client.get_run(run_id)
    experiment = mlflow_client.get_experiment(run.info.experiment_id)
    tags = dict(run.data.tags or {})
    source = {k: v for k, v in {
        "name": tags.get("mlflow.source.name"), "type": tags.get("mlflow.source.type"),
        "git_commit": tags.get("mlflow.source.git.commit"),
    }.items() if v}
    record = {
        "run_id": run.info.run_id,
        "run_name": run.info.run_name,
        "experiment_id": run.info.experiment_id,
        "experiment_name": experiment.name if experiment is not None else None,
        "user": run.info.user_id or tags.get("mlflow.user"),
        "status": run.info.status,
        "start_time": _millis(run.info.start_time),
        "end_time": _millis(run.info.end_time),
        "source": source,
        "params": dict(run.data.params or {}),
    }
    metrics = {str(k): float(v) for k, v in (run.data.metrics or {}).items()}
    return record, metrics
