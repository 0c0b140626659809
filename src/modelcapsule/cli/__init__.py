"""The ``capsule`` command line. Subcommands are imported only when run, so ``--help`` stays fast and
never imports torch, TensorFlow or the server.

Exit codes: 0 ok, 1 a check failed (untrusted names, drift under "error", verification, integrity),
2 usage error (bad arguments, missing file).
"""

from __future__ import annotations

import importlib
from typing import Any

import click

__all__ = ["COMMANDS", "main"]

COMMANDS: dict[str, tuple[str, str]] = {
    # name: ("module:attribute", one-line help shown by `capsule --help`)
    "advise": ("modelcapsule.cli.advise:command", "Measure every format on a model and recommend one."),
    "audit": ("modelcapsule.cli.audit:command", "List what a model file would import, importing nothing."),
    "card": ("modelcapsule.cli.card:command", "Write a capsule's model card as Markdown (Hugging Face front matter)."),
    "convert": ("modelcapsule.cli.convert:command", "Turn a .joblib/.pkl/.skops file into a safe capsule."),
    "demo": ("modelcapsule.cli.demo:command", "Train, save, reload, verify and serve a small model."),
    "import-mlflow": ("modelcapsule.cli.import_mlflow:command", "Turn an MLflow model into a capsule, safely."),
    "inspect": ("modelcapsule.cli.inspect:command", "Show a capsule's manifest without loading the model."),
    "env": ("modelcapsule.cli.env:command", "Print or re-create (--venv) the pinned environment of a capsule."),
    "dockerfile": ("modelcapsule.cli.dockerfile:command", "Write a Dockerfile that serves a capsule."),
    "retrain": ("modelcapsule.cli.retrain:command", "Re-run a capsule's training script and compare."),
    "kserve": ("modelcapsule.cli.kserve:command", "Write KServe manifests (ServingRuntime, InferenceService)."),
    "keygen": ("modelcapsule.cli.keygen:command", "Create an Ed25519 key pair for signing capsules."),
    "sign": ("modelcapsule.cli.sign:command", "Sign a capsule in place with a private key."),
    "serve": ("modelcapsule.cli.serve:command", "Serve capsules over TF Serving, V2 (REST, gRPC), Seldon, MLflow."),
    "models": ("modelcapsule.cli.models:command", "List registered models, one model's versions, or search by tag."),
    "alias": ("modelcapsule.cli.alias:command", "Move, roll back, protect a registry alias; show its history."),
    "register": ("modelcapsule.cli.register:command", "Check a capsule and store it as a model's next version."),
    "registry": ("modelcapsule.cli.registry:command", "Create, upgrade, check, clean and serve a model registry."),
    "predict": ("modelcapsule.cli.predict:command", "Score a CSV, Parquet, JSON Lines or NPY file chunk by chunk."),
    "verify": ("modelcapsule.cli.verify:command", "Check hashes, signature, environment drift and golden sample."),
}
"""One entry per subcommand; registered by :class:`LazyGroup` and imported only when invoked."""


class LazyGroup(click.Group):
    """A click group whose subcommands live in their own modules and are imported on use."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in COMMANDS:
            return None
        target, _help = COMMANDS[cmd_name]
        module_name, attr = target.split(":")
        command = getattr(importlib.import_module(module_name), attr)
        if not isinstance(command, click.Command):
            raise TypeError(f"{target} is not a click command")
        return command

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        rows = [(name, COMMANDS[name][1]) for name in self.list_commands(ctx)]
        with formatter.section("Commands"):
            formatter.write_dl(rows)


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="modelcapsule", prog_name="capsule")
def cli() -> None:
    """modelcapsule: save, audit, verify and serve machine-learning models safely."""


def main(argv: list[str] | None = None) -> Any:
    """Entry point of the ``capsule`` script."""
    return cli.main(args=argv, prog_name="capsule")
