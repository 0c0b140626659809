"""How a ``torch.nn.Module`` is described as plain data (class path + constructor arguments) and rebuilt.

Saving a module never pickles it. Its *spec* names the class and the arguments its constructor takes:

- a module with a ``get_config()`` method (as in Keras) is rebuilt with ``cls(**module.get_config())``;
- ``torch.nn.Sequential``, ``ModuleList`` and ``ModuleDict`` are rebuilt from the specs of their children;
- otherwise, as in scikit-learn, each constructor parameter is read from the attribute of the same name
  (``self.hidden = hidden`` in ``__init__``); parameters without such an attribute keep their defaults.

Argument values are JSON values, tuples, or nested modules (``{"$module": spec}``). At save time the spec
is rebuilt on the ``meta`` device and its state-dict keys and shapes compared with the module's, so a spec
that would not reload is refused at save, not discovered at load.

A spec names classes; :func:`spec_classes` lists them without importing anything so the trust policy is
checked first. Classes of ``torch.nn`` itself (``torch.nn.modules.*``) are this format's own vocabulary;
every other class (your own ``mypkg.Net``) must be admitted by the policy: ``trusted=["mypkg.Net"]``.
"""

from __future__ import annotations

import inspect
from collections.abc import Iterator, Mapping
from typing import Any

from ..errors import CapsuleFormatError, UnsupportedModelError, UntrustedTypesError
from ..security.policy import TrustPolicy, import_trusted

__all__ = ["BUILTIN_PREFIX", "build", "check_spec", "module_spec", "spec_classes", "untrusted_classes"]

BUILTIN_PREFIX = "torch.nn.modules."
_CONTAINERS = {
    "torch.nn.modules.container.Sequential",
    "torch.nn.modules.container.ModuleList",
    "torch.nn.modules.container.ModuleDict",
}


def module_spec(module: Any) -> dict[str, Any]:
    """The JSON spec of ``module``: ``{"module", "qualname", "args", "kwargs"}``."""
    cls = type(module)
    spec: dict[str, Any] = {"module": cls.__module__, "qualname": cls.__qualname__, "args": [], "kwargs": {}}
    path = f"{cls.__module__}.{cls.__qualname__}"
    if "<locals>" in cls.__qualname__ or cls.__module__ == "__main__":
        raise UnsupportedModelError(
            f"{path} is defined inside a function or in __main__, so no other process can import it. Move the "
            "class to a module (e.g. mypkg/nets.py) and save again."
        )
    if path in ("torch.nn.modules.container.Sequential", "torch.nn.modules.container.ModuleList"):
        children = [_encode({"$module": module_spec(child)}, f"{path}[{i}]") for i, child in enumerate(module)]
        spec["args"] = children if path.endswith("Sequential") else [children]
        return spec
    if path == "torch.nn.modules.container.ModuleDict":
        spec["args"] = [{name: {"$module": module_spec(child)} for name, child in module.items()}]
        return spec
    get_config = getattr(module, "get_config", None)
    if callable(get_config):
        config = get_config()
        if not isinstance(config, Mapping):
            raise UnsupportedModelError(f"{path}.get_config() must return a dict of constructor arguments")
        spec["kwargs"] = {str(k): _encode(v, f"{path}.get_config()[{k!r}]") for k, v in config.items()}
        return spec
    for name, param in inspect.signature(cls.__init__).parameters.items():
        if name == "self" or param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD):
            continue
        if hasattr(module, name):
            try:
                spec["kwargs"][name] = _encode(getattr(module, name), f"{path}.{name}")
                continue
            except TypeError:
                pass
        if param.default is param.empty:
            raise UnsupportedModelError(
                f"cannot tell which {name!r} {path} was built with: store it as `self.{name} = {name}` in "
                "__init__ (a number, string, list, dict or module), or give the class a get_config() method "
                "returning its constructor arguments."
            )
    return spec


def _encode(value: Any, where: str) -> Any:
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, dict) and set(value) == {"$module"}:
        return value
    if isinstance(value, tuple):
        return {"$tuple": [_encode(v, where) for v in value]}
    if isinstance(value, list):
        return [_encode(v, where) for v in value]
    if isinstance(value, Mapping) and all(isinstance(k, str) for k in value):
        return {k: _encode(v, where) for k, v in value.items()}
    if any(f"{c.__module__}.{c.__qualname__}" == "torch.nn.modules.module.Module" for c in type(value).__mro__):
        return {"$module": module_spec(value)}
    raise TypeError(f"{where}: a {type(value).__name__} is not a plain constructor argument")


def _walk(spec: Any) -> Iterator[dict[str, Any]]:
    if isinstance(spec, list):
        for v in spec:
            yield from _walk(v)
    elif isinstance(spec, dict):
        if set(spec) == {"$module"}:
            inner = spec["$module"]
            if not isinstance(inner, dict):
                raise CapsuleFormatError("malformed module spec: $module must be an object")
            yield inner
            yield from _walk(inner.get("args", []))
            yield from _walk(inner.get("kwargs", {}))
        else:
            for v in spec.values():
                yield from _walk(v)


def spec_classes(spec: Mapping[str, Any]) -> list[str]:
    """Every ``module.qualname`` the spec would import, found by reading JSON only."""
    names = []
    try:
        nodes = list(_walk({"$module": dict(spec)}))
    except RecursionError as exc:
        raise CapsuleFormatError("the module spec is nested too deeply; the file is corrupt or hostile") from exc
    for node in nodes:
        module, qualname = node.get("module"), node.get("qualname")
        if not isinstance(module, str) or not isinstance(qualname, str) or not module or not qualname:
            raise CapsuleFormatError("malformed module spec: every module needs a 'module' and a 'qualname' string")
        names.append(f"{module}.{qualname}")
    return sorted(set(names))


def untrusted_classes(spec: Mapping[str, Any]) -> list[str]:
    """The classes of the spec that are not part of ``torch.nn`` itself: these need the trust policy."""
    return [n for n in spec_classes(spec) if not n.startswith(BUILTIN_PREFIX)]


def build(spec: Mapping[str, Any], policy: TrustPolicy) -> Any:
    """Construct the module a spec describes. Refuses names outside ``torch.nn`` that ``policy`` does not admit,
    before importing anything."""
    refused = [n for n in untrusted_classes(spec) if not policy.admits(n)]
    if refused:
        raise UntrustedTypesError(refused, source="the PyTorch module spec")
    return _construct(spec, policy)


def _in_torch_nn(name: str) -> bool:
    return name.startswith(BUILTIN_PREFIX)


def _construct(spec: Mapping[str, Any], policy: TrustPolicy) -> Any:
    import torch

    module_name, qualname = str(spec["module"]), str(spec["qualname"])
    try:
        obj: Any = import_trusted(f"{module_name}.{qualname}", policy, module=module_name, vocabulary=_in_torch_nn)
    except ImportError as exc:
        raise CapsuleFormatError(f"cannot import {module_name!r}, which the module spec names: {exc}") from exc
    if not (isinstance(obj, type) and issubclass(obj, torch.nn.Module)):
        raise CapsuleFormatError(f"{module_name}.{qualname} is not a torch.nn.Module class; refusing to call it")
    args = spec.get("args", [])
    kwargs = spec.get("kwargs", {})
    if not isinstance(args, list) or not isinstance(kwargs, dict):
        raise CapsuleFormatError("malformed module spec: 'args' must be a list and 'kwargs' an object")
    return obj(*[_decode(a, policy) for a in args], **{str(k): _decode(v, policy) for k, v in kwargs.items()})


def _decode(value: Any, policy: TrustPolicy) -> Any:
    if isinstance(value, list):
        return [_decode(v, policy) for v in value]
    if isinstance(value, dict):
        if set(value) == {"$module"}:
            return _construct(value["$module"], policy)
        if set(value) == {"$tuple"} and isinstance(value["$tuple"], list):
            return tuple(_decode(v, policy) for v in value["$tuple"])
        return {k: _decode(v, policy) for k, v in value.items()}
    return value


def check_spec(module: Any, spec: Mapping[str, Any]) -> None:
    """Rebuild ``spec`` on the meta device and compare its state-dict layout with ``module``'s.

    Raises :class:`UnsupportedModelError` naming the first difference, so a module whose constructor
    arguments were not captured is refused at save time.
    """
    import torch

    try:
        with torch.device("meta"):  # the caller's own module, being saved: its classes are trusted
            rebuilt = _construct(spec, TrustPolicy(spec_classes(spec)))
    except (TypeError, ValueError, RuntimeError) as exc:
        raise UnsupportedModelError(
            f"cannot rebuild {spec['module']}.{spec['qualname']} from its recorded constructor arguments "
            f"({exc}). Store every constructor argument as an attribute of the same name, or add a "
            "get_config() method returning them."
        ) from exc
    want = {k: tuple(v.shape) for k, v in module.state_dict().items() if isinstance(v, torch.Tensor)}
    got = {k: tuple(v.shape) for k, v in rebuilt.state_dict().items() if isinstance(v, torch.Tensor)}
    if want != got:
        diff = sorted(set(want.items()) ^ set(got.items()))[:5]
        raise UnsupportedModelError(
            f"rebuilding {spec['module']}.{spec['qualname']} from its recorded constructor arguments "
            f"{spec.get('kwargs') or spec.get('args')} gives different weights (first differences: {diff}). "
            "Store every constructor argument as an attribute of the same name, or add a get_config() method."
        )
