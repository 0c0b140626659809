"""Why an MLflow model was not imported: typed errors that name what was refused and what to do.

Both subclass :class:`modelcapsule.UntrustedTypesError` (a ``TypeError``), so code that already catches
modelcapsule's refusals catches these too; the messages add what only the MLflow bridge knows (the trust
list the model carried and that was ignored, how to re-log the model safely).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from ...errors import UntrustedTypesError

__all__ = ["CODE_MODULES", "MLflowCodeRefusedError", "MLflowUntrustedError", "carries_code"]

CODE_MODULES = ("cloudpickle.", "types.CodeType", "types.FunctionType", "builtins.exec", "builtins.eval",
                "builtins.compile", "marshal.")
"""Names that mean the payload holds code stored by value: no trust list makes loading it safe."""


def carries_code(names: Iterable[str]) -> list[str]:
    """The names among ``names`` that rebuild code from the file (cloudpickle's function and class makers)."""
    return sorted({n for n in names if n.startswith(CODE_MODULES)})


def _ignored_note(ignored: Mapping[str, list[str]]) -> str:
    if not ignored:
        return ""
    lists = "; ".join(f"{key}: {', '.join(names)}" for key, names in ignored.items())
    return (f"\nThe MLflow model carries its own trust list ({lists}); it was ignored: a list written inside "
            "the file is chosen by whoever wrote the file, so only your --trust names count.")


def _listed(names: Iterable[str]) -> str:
    return "\n".join(f"  - {n}" for n in names)


class MLflowUntrustedError(UntrustedTypesError):
    """The MLflow model's payload would import names outside modelcapsule's trust policy plus ``--trust``."""

    def __init__(self, names: Iterable[str], source: str, ignored: Mapping[str, list[str]], hint: str = "",
                 audit_path: str = "PAYLOAD_FILE") -> None:
        self.names = sorted(set(names))
        self.ignored_trust_lists = dict(ignored)
        flags = " ".join(f"--trust {n}" for n in self.names)
        TypeError.__init__(
            self,
            f"{source} would import {len(self.names)} name(s) outside the trust policy:\n{_listed(self.names)}\n"
            f"Nothing was imported or run.{_ignored_note(ignored)}\nIf you trust where the model came from and "
            f"have checked these names (`capsule audit {audit_path}`), import it again with {flags} "
            f"(trusted=[...] in import_mlflow).{hint}",
        )


class MLflowCodeRefusedError(UntrustedTypesError):
    """The payload stores code by value (a cloudpickle'd lambda, function or class): never imported."""

    def __init__(self, names: Iterable[str], source: str, ignored: Mapping[str, list[str]]) -> None:
        self.names = sorted(set(names))
        self.ignored_trust_lists = dict(ignored)
        TypeError.__init__(
            self,
            f"{source} holds Python code stored by value (cloudpickle); loading it would run that code. It "
            f"names:\n{_listed(self.names)}\nNothing was imported or run, and --trust cannot admit code "
            f"carried by a file.{_ignored_note(ignored)}\nWhat to do: in the environment that trained the model "
            "(where you trust its code), replace lambdas and locally defined functions or classes by importable "
            "ones, then log it again with mlflow.sklearn.log_model(..., serialization_format='skops') or save "
            "it with modelcapsule.save(model, 'model.capsule').",
        )
