"""``pt``: raw ``torch.save`` files (``*.pt``, ``*.pth``), read with PyTorch's safe loader only.

These files are pickles. They are read for interoperability, never written (save PyTorch modules as
``safetensors``). The audit lists every global the file's pickles name that PyTorch's safe loader would
not accept, so the trust policy refuses a hostile file before torch sees it; the load itself always uses
``torch.load(weights_only=True)`` and is never retried without it. A state dict loads as a ``dict`` of
tensors; ``device`` maps them (default: the CPU). Names outside PyTorch's safe list that the trust policy
admits because the user named them (``trusted=["mypkg.Net"]``, never the defaults) are handed to the safe
loader as extra safe globals.
"""

from __future__ import annotations

import io
import pickle
from typing import Any, ClassVar

from ..errors import CapsuleFormatError, UnsupportedModelError, UntrustedTypesError
from ._members import main_member, resolve
from .base import LoadOptions, MemberSink, MemberSource, SaveResult
from .torch_pickles import torch_file_globals, unsafe_torch_globals

__all__ = ["FORMATS", "TorchSaveFormat"]

MEMBER = "model/model.pt"


class TorchSaveFormat:
    """Read-only: ``torch.save`` files through ``torch.load(weights_only=True)``."""

    name: ClassVar[str] = "pt"
    runs_code: ClassVar[bool] = False
    safety: ClassVar[int] = 60
    extensions: ClassVar[tuple[str, ...]] = (".pt", ".pth")

    def supports(self, model: Any) -> bool:
        return False

    def save(self, model: Any, sink: MemberSink) -> SaveResult:
        raise UnsupportedModelError(
            "modelcapsule never writes torch.save pickles; save PyTorch modules with format='safetensors'."
        )

    def audit(self, source: MemberSource, details: dict[str, Any], options: LoadOptions) -> list[str]:
        """Names outside torch's own safe list. A name the default policy admits but the user did not trust
        by name is refused here, as the load refuses it: the defaults are reviewed for modelcapsule's
        unpickler, not for torch's. Names outside the policy are returned for the caller to refuse."""
        unsafe = unsafe_torch_globals(torch_file_globals(source.read(main_member(source, details, MEMBER))))
        refused = [n for n in unsafe if n not in options.policy.extra and options.policy.admits(n)]
        if refused:
            raise UntrustedTypesError(refused, source="the PyTorch file")
        return unsafe

    def load(self, source: MemberSource, details: dict[str, Any], options: LoadOptions) -> Any:
        import torch

        data = source.read(main_member(source, details, MEMBER))
        unsafe = unsafe_torch_globals(torch_file_globals(data))
        refused = [n for n in unsafe if n not in options.policy.extra]
        if refused:
            raise UntrustedTypesError(refused, source="the PyTorch file")
        # only names the user trusted explicitly widen torch's safe loader: our defaults are reviewed for
        # our dry run, not for torch's unpickler, which would call them as it likes
        extra = [resolve(n, options.policy) for n in unsafe]
        try:
            with torch.serialization.safe_globals(extra):
                return torch.load(io.BytesIO(data), weights_only=True, map_location=options.device or "cpu")
        except pickle.UnpicklingError as exc:
            raise CapsuleFormatError(
                f"PyTorch's safe loader refused this file ({str(exc).splitlines()[0]}). It is not retried with "
                "the full unpickler: re-save the weights as a state_dict or as safetensors."
            ) from exc
        except (RuntimeError, EOFError, ValueError) as exc:
            raise CapsuleFormatError(f"the PyTorch file is corrupt or truncated: {exc}") from exc


FORMATS = (TorchSaveFormat(),)
