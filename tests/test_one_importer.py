"""One importer of names: only ``security.policy.import_trusted`` turns a name held in data into an object.

Every module of the package is parsed with ``ast`` (nothing is imported) and every way of importing by a
computed name is located: ``importlib.import_module``, ``__import__``, ``importlib.__import__``,
``pkgutil.resolve_name``, and ``getattr`` on a module reached through ``sys.modules`` or an import call.
The only places allowed to do so are the importer itself, the lazy extension registry (which imports
the modules of its own fixed tables and installed entry points), the CLI's lazy COMMANDS loader, and
the generator of the scikit-learn trust list (which walks scikit-learn's own package, never a file's
names).
"""

from __future__ import annotations

import ast
from pathlib import Path

import modelcapsule

ROOT = Path(modelcapsule.__file__).parent
ALLOWED = {
    ("security/policy.py", "_import_module"): "the one importer's module lookup (called by import_trusted only)",
    ("security/policy.py", "import_trusted"): "the one importer",
    ("core/extensions.py", "*"): "the lazy extension registry: its own tables and entry points",
    ("cli/__init__.py", "*"): "the CLI's lazy COMMANDS loader",
    ("security/defaults.py", "compute_sklearn_names"): "walks scikit-learn's own modules to build the list",
}
IMPORTERS = {"import_module", "__import__", "resolve_name", "find_class"}


def _is_module_expr(node: ast.expr) -> bool:
    """``sys.modules[...]`` or a call that imports (``import_module(...)``, ``__import__(...)``)."""
    if isinstance(node, ast.Subscript) and isinstance(node.value, ast.Attribute):
        return node.value.attr == "modules"
    if isinstance(node, ast.Call):
        func = node.func
        name = func.attr if isinstance(func, ast.Attribute) else func.id if isinstance(func, ast.Name) else ""
        return name in ("import_module", "__import__")
    return False


def _offences(tree: ast.AST) -> list[tuple[str, int, str]]:
    found: list[tuple[str, int, str]] = []

    def visit(node: ast.AST, function: str) -> None:
        for child in ast.iter_child_nodes(node):
            scope = child.name if isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef) else function
            if isinstance(child, ast.Call):
                func = child.func
                name = func.attr if isinstance(func, ast.Attribute) else func.id if isinstance(func, ast.Name) else ""
                via_pkgutil = isinstance(func, ast.Attribute) and getattr(func.value, "id", "") == "pkgutil"
                if name in ("import_module", "__import__") or (name == "resolve_name" and via_pkgutil):
                    found.append((function, child.lineno, name))
                if name == "getattr" and child.args and _is_module_expr(child.args[0]) and not (
                        len(child.args) > 1 and isinstance(child.args[1], ast.Constant)):
                    found.append((function, child.lineno, "getattr on a module"))
            visit(child, scope)

    visit(tree, "<module>")
    return found


def test_no_module_imports_by_name_outside_the_one_importer() -> None:
    offences = []
    for path in sorted(ROOT.rglob("*.py")):
        rel = path.relative_to(ROOT).as_posix()
        for function, line, what in _offences(ast.parse(path.read_text(), str(path))):
            if (rel, function) in ALLOWED or (rel, "*") in ALLOWED:
                continue
            offences.append(f"{rel}:{line} in {function}(): {what}")
    assert not offences, "import by name outside security.policy.import_trusted:\n" + "\n".join(offences)


def test_the_detector_finds_each_way_of_importing() -> None:
    source = (
        "import importlib, sys\n"
        "def a(n):\n    return importlib.import_module(n)\n"
        "def b(n):\n    return __import__(n)\n"
        "def c(m, n):\n    return getattr(sys.modules[m], n)\n"
        "def d(m, n):\n    return getattr(importlib.import_module(m), n)\n"
        "def e(n):\n    import pkgutil\n    return pkgutil.resolve_name(n)\n"
    )
    assert {f for f, _line, _what in _offences(ast.parse(source))} == {"a", "b", "c", "d", "e"}


def test_the_importer_refuses_what_the_policy_does_not_name() -> None:
    import pytest

    from modelcapsule.errors import CapsuleFormatError, UntrustedTypesError
    from modelcapsule.security.policy import DEFAULT_POLICY, TrustPolicy, import_trusted

    assert import_trusted("sklearn.base.BaseEstimator", DEFAULT_POLICY).__name__ == "BaseEstimator"
    with pytest.raises(UntrustedTypesError):
        import_trusted("os.system", DEFAULT_POLICY)
    with pytest.raises(CapsuleFormatError, match="special attribute"):
        import_trusted("sklearn.base.BaseEstimator.__init__.__globals__", TrustPolicy(
            ["sklearn.base.BaseEstimator.__init__.__globals__"]))
    with pytest.raises(CapsuleFormatError, match="reaches a module"):
        import_trusted("sklearn.base.inspect.getsource", TrustPolicy(["sklearn.base.inspect.getsource"]))
