"""``keras``: a Keras 3 ``.keras`` archive, loaded with ``safe_mode=True`` and custom objects only by trust.

Member: ``model/model.keras``, exactly what ``model.save()`` writes. The audit opens the archive's
``config.json`` as plain JSON (nothing is imported) and lists every object the config would resolve
outside Keras itself: custom layers (``{"module": "mypkg.layers", "class_name": "Scale"}`` →
``mypkg.layers.Scale``), registered custom functions (``"mypkg>fn"``, named by where Keras registered
them, else ``mypkg.fn``) and anything naming a module that is not Keras (``os.system`` is refused like any
other name). Python bytecode (``Lambda`` layers) is refused outright: Keras' safe mode refuses it too, and no
trust list can make it safe.

Keras calls whatever it is handed (an activation runs on every batch, a class's ``from_config`` runs at
load), so the default trust policy, reviewed for modelcapsule's own parsers ("this function may be kept as
a value"), never widens Keras' safe mode: every object outside Keras must be one the user trusted by name
(``trusted=[...]``, ``--trust``; :meth:`TrustPolicy.user_trusts`). The audit refuses exactly those names,
so ``mc.audit`` reports what the load would refuse. Only then are the objects imported through the one
importer (:func:`~modelcapsule.security.policy.import_trusted`) and handed to
``keras.saving.load_model(..., safe_mode=True, custom_objects=...)``.

Legacy ``.h5`` files need TensorFlow's Keras; without TensorFlow they are refused with a clear error.
"""

from __future__ import annotations

import io
import json
import os
import tempfile
import warnings
import zipfile
import zlib
from collections.abc import Iterator
from typing import Any, ClassVar

from ..errors import CapsuleFormatError, UnsupportedModelError, UntrustedTypesError
from ..frameworks.keras import import_keras, is_keras_model
from ..security.policy import TrustPolicy, import_trusted
from ._members import main_member
from .base import LoadOptions, MemberSink, MemberSource, SaveResult

__all__ = ["FORMATS", "KerasFormat", "config_custom_objects"]

MEMBER = "model/model.keras"


MAX_CONFIG_BYTES = 64 << 20
"""Largest ``config.json`` read from a ``.keras`` archive (a model's config is kilobytes to a few megabytes)."""

MAX_CONFIG_DEPTH = 100
"""Deepest nesting of lists and objects in a Keras config (nested models and wrappers stay far below)."""


def _objects(config: Any) -> Iterator[dict[str, Any]]:
    """Every object of ``config`` that names a class, walked iteratively within :data:`MAX_CONFIG_DEPTH`."""
    stack: list[tuple[Any, int]] = [(config, 0)]
    while stack:
        node, depth = stack.pop()
        if depth > MAX_CONFIG_DEPTH:
            raise CapsuleFormatError(f"the Keras config nests deeper than {MAX_CONFIG_DEPTH} levels; refusing it.")
        if isinstance(node, dict):
            if "class_name" in node:
                yield node
            stack.extend((v, depth + 1) for v in reversed(list(node.values())))
        elif isinstance(node, list):
            stack.extend((v, depth + 1) for v in reversed(node))


def _is_keras_module(module: str) -> bool:
    return module == "keras" or module.startswith("keras.")


def config_custom_objects(config: Any) -> dict[str, str]:
    """``{policy name: key Keras looks it up by}`` for every object of ``config`` outside Keras itself.

    A registered name (``"pkg>Name"``) that Keras' own registry holds is named by where the registered
    object lives, since Keras prefers its registry to ``custom_objects``: what is checked is what Keras uses.
    Raises :class:`CapsuleFormatError` for Python bytecode (``__lambda__``), which is never loaded.
    """
    found: dict[str, str] = {}
    for obj in _objects(config):
        class_name, module = obj.get("class_name"), obj.get("module")
        registered = obj.get("registered_name")
        if not isinstance(class_name, str):
            continue
        if class_name == "__lambda__":
            raise CapsuleFormatError(
                "the Keras model holds Python bytecode (a Lambda layer or a lambda function). Loading it would run "
                "that code, so it is refused whatever the trust list says. Replace the Lambda layer with a custom "
                "layer class (registered with keras.saving.register_keras_serializable) and save again."
            )
        if module is None or (class_name.startswith("__") and class_name.endswith("__")):
            continue  # Keras' own value encodings (__tensor__, __numpy__, ...) or registry lookups by name
        if not isinstance(module, str):
            raise CapsuleFormatError(f"malformed Keras config: module {module!r} is not a string")
        if class_name == "function" and module == "builtins":
            name = obj.get("config")
            if isinstance(name, str) and ">" in name:
                found[_registered_path(name)] = name
            continue  # a Keras built-in function looked up by name ("relu", "mse")
        if _is_keras_module(module) and registered in (None, class_name):
            continue  # a Keras built-in class
        if class_name == "function":
            name = obj.get("config")
            if not isinstance(name, str):
                raise CapsuleFormatError("malformed Keras config: a function reference has no name")
            found[f"{module}.{name}"] = registered if isinstance(registered, str) and ">" in registered else name
        elif isinstance(registered, str) and ">" in registered:
            found[_registered_path(registered, default=f"{module}.{class_name}")] = registered
        else:
            found[f"{module}.{class_name}"] = registered if isinstance(registered, str) else class_name
    return found


def _registered_path(registered: str, default: str | None = None) -> str:
    """Where a registered custom object lives: from Keras' registry when its module was imported, else
    ``default`` or the registered package and name (``"mypkg>fn"`` → ``mypkg.fn``)."""
    keras = import_keras()
    obj = keras.saving.get_registered_object(registered)
    if obj is not None:
        module, qualname = getattr(obj, "__module__", None), getattr(obj, "__qualname__", None)
        if isinstance(module, str) and isinstance(qualname, str):
            return f"{module}.{qualname}"
        return f"<registered Keras object {registered}>"  # no importable name: never trusted
    if default is not None:
        return default
    package, _, name = registered.partition(">")
    return f"{package}.{name}"


def _refuse_unless_user_trusted(custom: dict[str, str], policy: TrustPolicy) -> None:
    """Refuse every object outside Keras that the user did not trust by name (the defaults never count)."""
    refused = [name for name in custom if not policy.user_trusts(name)]
    if refused:
        raise UntrustedTypesError(refused, source="the Keras model")


def _parse_config(raw: bytes | str, what: str) -> Any:
    try:
        config = json.loads(raw)
    except (ValueError, UnicodeDecodeError, RecursionError) as exc:
        raise CapsuleFormatError(f"{what} is not valid JSON ({type(exc).__name__}); the model is corrupt.") from exc
    for _ in _objects(config):  # the depth budget, before anyone else walks it
        pass
    return config


def read_config(data: bytes) -> Any:
    """The ``config.json`` of a ``.keras`` archive, as plain JSON (at most :data:`MAX_CONFIG_BYTES`, nested
    at most :data:`MAX_CONFIG_DEPTH` deep)."""
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            info = archive.getinfo("config.json")
            if info.file_size > MAX_CONFIG_BYTES:
                raise CapsuleFormatError(f"the Keras config.json is {info.file_size:,} bytes, more than the "
                                         f"{MAX_CONFIG_BYTES:,} a model's config needs; refusing it.")
            with archive.open(info) as fh:
                raw = fh.read(MAX_CONFIG_BYTES + 1)
    except (zipfile.BadZipFile, zipfile.LargeZipFile, KeyError, ValueError, OSError, EOFError,
            NotImplementedError, zlib.error) as exc:
        if isinstance(exc, CapsuleFormatError):
            raise
        raise CapsuleFormatError(f"not a valid .keras archive (no readable config.json): {exc}") from exc
    if len(raw) > MAX_CONFIG_BYTES:
        raise CapsuleFormatError("the Keras config.json is larger than its header says; refusing it.")
    return _parse_config(raw, "the Keras config.json")


def read_h5_config(data: bytes) -> Any:
    """The ``model_config`` attribute of a legacy Keras ``.h5`` file, as plain JSON (h5py parses data only)."""
    import h5py

    try:
        with h5py.File(io.BytesIO(data), "r") as fh:
            raw = fh.attrs.get("model_config")
    except OSError as exc:
        raise CapsuleFormatError(f"not a valid HDF5 file: {exc}") from exc
    if raw is None:
        raise CapsuleFormatError("the .h5 file holds no model_config; it is weights only, not a model")
    return _parse_config(raw if isinstance(raw, bytes) else str(raw), "the .h5 model_config")


def _require_tensorflow(what: str) -> None:
    import importlib.util

    if importlib.util.find_spec("tensorflow") is None:
        raise UnsupportedModelError(
            f"{what} files are TensorFlow Keras (Keras 2) models; reading them needs TensorFlow, which is not "
            "installed. Load the model where TensorFlow is installed and re-save it with model.save('m.keras')."
        )


class KerasFormat:
    """Keras 3 ``.keras`` archives."""

    name: ClassVar[str] = "keras"
    runs_code: ClassVar[bool] = False
    safety: ClassVar[int] = 10
    extensions: ClassVar[tuple[str, ...]] = (".keras", ".h5")

    def supports(self, model: Any) -> bool:
        return is_keras_model(model)

    def save(self, model: Any, sink: MemberSink) -> SaveResult:
        if not is_keras_model(model):
            raise UnsupportedModelError(f"the keras format stores Keras 3 models, not {type(model)}")
        with tempfile.TemporaryDirectory(prefix="modelcapsule-keras-") as tmp:
            path = os.path.join(tmp, "model.keras")
            with warnings.catch_warnings():
                # Keras' torch backend converts tensors with np.array(x, copy=False) on numpy 2 (Keras' noise)
                warnings.filterwarnings("ignore", message="__array__ implementation doesn't accept a copy keyword",
                                        category=DeprecationWarning)
                model.save(path)
            with open(path, "rb") as fh:
                data = fh.read()
        custom = config_custom_objects(read_config(data))
        sink.add(MEMBER, data)
        return SaveResult(details={"member": MEMBER}, types=sorted(custom))

    def audit(self, source: MemberSource, details: dict[str, Any], options: LoadOptions) -> list[str]:
        """Every object outside Keras the model names; refused here (as the load refuses them) unless the
        user trusted each by name."""
        member = main_member(source, details, MEMBER)
        custom = config_custom_objects(self._config(member, source.read(member)))
        _refuse_unless_user_trusted(custom, options.policy)
        return sorted(custom)

    @staticmethod
    def _config(member: str, data: bytes) -> Any:
        if member.endswith(".h5"):
            _require_tensorflow(".h5")
            return read_h5_config(data)
        return read_config(data)

    def load(self, source: MemberSource, details: dict[str, Any], options: LoadOptions) -> Any:
        member = main_member(source, details, MEMBER)
        data = source.read(member)
        custom = config_custom_objects(self._config(member, data))
        _refuse_unless_user_trusted(custom, options.policy)
        objects: dict[str, Any] = {}
        for path, key in custom.items():
            obj = import_trusted(path, options.policy)
            objects[key] = obj
            objects[path.rsplit(".", 1)[1]] = obj
        keras = import_keras()
        for key, obj in objects.items():
            # importing a trusted module may register other objects; Keras' registry wins over
            # custom_objects, so a key it holds must reach the very object that was trusted
            registered = keras.saving.get_registered_object(key)
            if registered is not None and registered is not obj:
                raise UntrustedTypesError([_registered_path(key)], source="the Keras model")
        with tempfile.TemporaryDirectory(prefix="modelcapsule-keras-") as tmp:
            path = os.path.join(tmp, "model.h5" if member.endswith(".h5") else "model.keras")
            with open(path, "wb") as fh:
                fh.write(data)
            try:
                return keras.saving.load_model(path, custom_objects=objects, safe_mode=True)
            except (TypeError, ValueError, KeyError, OSError) as exc:
                raise CapsuleFormatError(f"Keras refused to load the model: {exc}") from exc


FORMATS = (KerasFormat(),)
