"""Check manifests against the KServe SDK's model classes (run with a Python that has ``kserve``).

Each document is built into its SDK class field by field, following the classes' own ``openapi_types``
and ``attribute_map`` (KServe's classes, and the Kubernetes client's for the objects they embed): a key
the class does not define, a value of the wrong type, or a required field left out (the classes'
client-side validation) fails the check. Prints one line per document; exits 1 on the first problem.
"""

import re
import sys

import kserve.models as kserve_models
import kubernetes.client.models as k8s_models
import yaml

KINDS = {"ServingRuntime": "V1alpha1ServingRuntime", "InferenceService": "V1beta1InferenceService"}
SCALARS = {"str": str, "int": int, "bool": bool, "float": (int, float)}


def resolve(name):
    for module in (kserve_models, k8s_models):
        if hasattr(module, name):
            return getattr(module, name)
    raise LookupError(f"no SDK class {name}")


def build(value, type_name, where):
    type_name = type_name.strip()
    if type_name == "object":
        return value
    if type_name in SCALARS:
        if (isinstance(value, bool) and type_name != "bool") or not isinstance(value, SCALARS[type_name]):
            raise TypeError(f"{where}: {value!r} is not {type_name}")
        return value
    match = re.fullmatch(r"(?:list|List)\[(.+)\]", type_name)
    if match:
        if not isinstance(value, list):
            raise TypeError(f"{where}: expected a list, got {value!r}")
        return [build(v, match.group(1), f"{where}[{i}]") for i, v in enumerate(value)]
    match = re.fullmatch(r"(?:dict\(str, (.+)\)|Dict\[str, (.+)\])", type_name)
    if match:
        if not isinstance(value, dict):
            raise TypeError(f"{where}: expected a mapping, got {value!r}")
        inner = match.group(1) or match.group(2)
        return {k: build(v, inner, f"{where}.{k}") for k, v in value.items()}
    cls = resolve(type_name)
    if not isinstance(value, dict):
        raise TypeError(f"{where}: expected a {type_name} mapping, got {value!r}")
    by_key = {key: attr for attr, key in cls.attribute_map.items()}
    unknown = sorted(set(value) - set(by_key))
    if unknown:
        raise KeyError(f"{where}: {type_name} has no field(s) {unknown}")
    kwargs = {by_key[k]: build(v, cls.openapi_types[by_key[k]], f"{where}.{k}") for k, v in value.items()}
    return cls(**kwargs)


failed = False
for path in sys.argv[1:]:
    with open(path, encoding="utf-8") as fh:
        for doc in yaml.safe_load_all(fh):
            try:
                obj = build(doc, KINDS[doc["kind"]], doc["kind"])
            except (TypeError, KeyError, ValueError, LookupError) as exc:
                print(f"INVALID {path}: {exc}")
                failed = True
            else:
                print(f"ok {path}: {type(obj).__module__}.{type(obj).__name__}")
sys.exit(1 if failed else 0)
