"""``import modelcapsule`` imports only the exceptions; every other public name is imported on first use,
and the verbs stay functions however their modules were imported (``mc.load`` is never the module)."""

from __future__ import annotations

import json
import subprocess
import sys

import modelcapsule as mc


def child(code: str, env: dict[str, str]) -> object:
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True, timeout=120)
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_importing_the_package_imports_no_verb_and_no_numpy(subprocess_env: dict[str, str]) -> None:
    code = ("import json, sys, modelcapsule\n"
            "print(json.dumps(sorted(m for m in sys.modules if m.startswith('modelcapsule') or m == 'numpy')))")
    assert child(code, subprocess_env) == ["modelcapsule", "modelcapsule.errors"]


def test_a_verb_stays_the_function_whoever_imported_its_module_first(subprocess_env: dict[str, str]) -> None:
    """The server imports ``modelcapsule.load`` (the module) long before anyone asks for ``mc.load``."""
    code = ("import json, sys, types\n"
            "import modelcapsule as mc\n"
            "import modelcapsule.load, modelcapsule.save, modelcapsule.verify, modelcapsule.audit\n"
            "import modelcapsule.convert, modelcapsule.advise\n"
            "names = ['load', 'save', 'verify', 'audit', 'convert', 'advise']\n"
            "print(json.dumps([[callable(getattr(mc, n)), isinstance(getattr(mc, n), types.ModuleType),\n"
            "                   isinstance(sys.modules['modelcapsule.' + n], types.ModuleType)] for n in names]))")
    assert child(code, subprocess_env) == [[True, False, True]] * 6


def test_every_public_name_resolves_to_what_its_module_defines() -> None:
    import modelcapsule.load as load_module  # ``import a.b as c`` reads the attribute: the function

    assert mc.load is sys.modules["modelcapsule.load"].load is load_module
    for name in mc.__all__:
        value = getattr(mc, name)
        assert getattr(value, "__name__", name) == name or name == "CAPSULE_VERSION", name
    assert set(mc.__all__) <= set(dir(mc))
