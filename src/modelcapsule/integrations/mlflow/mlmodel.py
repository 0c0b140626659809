"""An MLflow model directory's ``MLmodel`` file, read as plain data.

``MLmodel`` is YAML. It is parsed with :func:`yaml.safe_load` (no tags, so no object is ever built from
it), size-capped, and turned into a small record of what the importer needs: the flavors, the signature,
the input example's file and type, the run it was logged from. Nothing in it is trusted: in particular a
trust list written by MLflow (``skops_trusted_types``) is only *reported*, never used, because a list that
travels with the file is chosen by whoever wrote the file (mlflow#25686, GHSA-w582-9x45-8mpx).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ...errors import CapsuleFormatError

__all__ = ["MAX_MLMODEL_BYTES", "TRUST_LIST_KEYS", "MLModel", "read_mlmodel", "safe_yaml"]

MAX_MLMODEL_BYTES = 1 << 20
"""An MLmodel file is a few kilobytes; anything above a megabyte is refused before YAML sees it."""

TRUST_LIST_KEYS = ("skops_trusted_types", "trusted_types", "trusted")
"""Keys under a flavor that hold a trust list written by the model's author; reported, never honoured."""


@dataclass
class MLModel:
    """What an ``MLmodel`` file says, as plain data (see :func:`read_mlmodel`)."""

    path: Path
    flavors: dict[str, dict[str, Any]]
    signature: dict[str, Any] | None = None
    example_info: dict[str, Any] | None = None
    run_id: str | None = None
    model_id: str | None = None
    model_uuid: str | None = None
    mlflow_version: str | None = None
    created: str | None = None
    metadata: dict[str, Any] = field(default_factory=dict)

    @property
    def directory(self) -> Path:
        return self.path.parent

    def ignored_trust_lists(self) -> dict[str, list[str]]:
        """``{"sklearn.skops_trusted_types": [names...]}`` for every non-empty trust list in the file."""
        found: dict[str, list[str]] = {}
        for flavor, conf in self.flavors.items():
            for key in TRUST_LIST_KEYS:
                value = conf.get(key)
                if value:
                    items = value if isinstance(value, list) else [value]
                    found[f"{flavor}.{key}"] = [str(v) for v in items]
        return found

    def code_paths(self) -> list[str]:
        """Python code directories the model ships (``code_paths``); never imported, only reported."""
        return sorted({str(conf["code"]) for conf in self.flavors.values() if conf.get("code")})


def safe_yaml(text: str) -> Any:
    """Parse YAML with :class:`yaml.SafeLoader` (no tags, so no object is ever built) and without anchors
    and aliases, whose nesting lets a kilobyte expand into gigabytes once the data is walked or dumped.
    Raises :class:`yaml.YAMLError`."""
    import yaml

    class _PlainLoader(yaml.SafeLoader):  # type: ignore[misc]
        def compose_node(self, parent: Any, index: Any) -> Any:
            if self.check_event(yaml.AliasEvent):
                raise yaml.YAMLError("YAML aliases (*name) are not accepted in MLflow model files")
            return super().compose_node(parent, index)

    return yaml.load(text, Loader=_PlainLoader)  # noqa: S506 - a SafeLoader subclass


def _optional_str(data: Mapping[str, Any], key: str) -> str | None:
    value = data.get(key)
    return None if value is None else str(value)


def read_mlmodel(directory: str | Path) -> MLModel:
    """Parse ``directory/MLmodel``; a missing, oversized or malformed file is a :class:`CapsuleFormatError`."""
    import yaml

    path = Path(directory) / "MLmodel"
    if not path.is_file():
        raise CapsuleFormatError(
            f"{Path(directory)} has no MLmodel file, so it is not an MLflow model directory. Point at the "
            "folder that holds MLmodel (for a run: runs:/RUN_ID/ARTIFACT_PATH)."
        )
    size = path.stat().st_size
    if size > MAX_MLMODEL_BYTES:
        raise CapsuleFormatError(f"{path} is {size:,} bytes, over the {MAX_MLMODEL_BYTES:,} an MLmodel file may have.")
    try:
        data = safe_yaml(path.read_text(encoding="utf-8"))
    except (yaml.YAMLError, UnicodeDecodeError, RecursionError) as exc:
        raise CapsuleFormatError(f"{path} is not valid YAML: {exc}") from None
    if not isinstance(data, dict) or not isinstance(data.get("flavors"), dict):
        raise CapsuleFormatError(f"{path} has no 'flavors' mapping; it is not an MLflow model file.")
    flavors = {str(k): dict(v) if isinstance(v, dict) else {} for k, v in data["flavors"].items()}
    signature = data.get("signature")
    example = data.get("saved_input_example_info")
    metadata = data.get("metadata")
    return MLModel(
        path=path,
        flavors=flavors,
        signature=dict(signature) if isinstance(signature, dict) else None,
        example_info=dict(example) if isinstance(example, dict) else None,
        run_id=_optional_str(data, "run_id"),
        model_id=_optional_str(data, "model_id"),
        model_uuid=_optional_str(data, "model_uuid"),
        mlflow_version=_optional_str(data, "mlflow_version"),
        created=_optional_str(data, "utc_time_created"),
        metadata=dict(metadata) if isinstance(metadata, dict) else {},
    )
