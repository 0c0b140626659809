"""``mc.Registry`` is the model registry, imported on first use: ``import modelcapsule`` and ``capsule --help``
never import SQLAlchemy, and the name is not the extension-table ``Registry`` of ``modelcapsule.core``."""

from __future__ import annotations

import subprocess
import sys


def test_importing_modelcapsule_does_not_import_sqlalchemy(subprocess_env: dict[str, str]) -> None:
    code = ("import sys, modelcapsule as mc\n"
            "before = 'sqlalchemy' in sys.modules\n"
            "from modelcapsule.cli import main\n"
            "try:\n    main(['register', '--help'])\nexcept SystemExit:\n    pass\n"
            "help_imports = 'sqlalchemy' in sys.modules\n"
            "registry = mc.Registry\n"
            "print(before, help_imports, registry.__module__, 'sqlalchemy' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], env=subprocess_env, capture_output=True, text=True,
                         check=True).stdout.split()
    assert out[-4:] == ["False", "False", "modelcapsule.registry.service", "False"]


def test_the_model_registry_is_not_the_extension_table() -> None:
    import modelcapsule as mc
    from modelcapsule.core.extensions import Registry as ExtensionTable
    from modelcapsule.registry import Registry

    assert mc.Registry is Registry and mc.Registry is not ExtensionTable
    assert "Registry" in mc.__all__
