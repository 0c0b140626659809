"""``torchexport``: a ``torch.export.ExportedProgram``, stored with ``torch.export.save``.

An exported program is a graph of ATen operators plus its weights, so loading it needs no Python class
from the user. Its archive is mostly JSON and raw weight buffers, but ``torch.export.load`` unpickles a
few members (example inputs, pickled constants) and, when the safe loader fails, silently retries with
the full unpickler. So: at audit every member torch may unpickle is scanned and any global outside
PyTorch's own safe list is reported (the trust policy refuses it before torch is called); at load
``TORCH_FORCE_WEIGHTS_ONLY_LOAD=1`` is set so even torch's fallback stays on the safe loader.
Programs holding custom objects (TorchBind classes) are refused at save: they need trusted code.
"""

from __future__ import annotations

import io
import json
import os
import pickle
import threading
import zipfile
from typing import Any, ClassVar

from ..errors import CapsuleFormatError, UnsupportedModelError
from ..frameworks.torch import is_exported_program
from ._members import main_member
from .base import LoadOptions, MemberSink, MemberSource, SaveResult
from .torch_pickles import pickle_globals, torch_file_globals, unsafe_torch_globals

__all__ = ["FORMATS", "TorchExportFormat", "archive_globals"]

MEMBER = "model/program.pt2"
_TEXT_MEMBERS = ("archive_format", "archive_version", "byteorder", "version", "serialization_id", ".json")
_ENV_LOCK = threading.Lock()


def archive_globals(data: bytes) -> set[str]:
    """Globals named by every member of a ``torch.export`` archive that torch could unpickle."""
    found: set[str] = set()
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
    except zipfile.BadZipFile as exc:
        raise CapsuleFormatError(f"the torch.export archive is corrupt: {exc}") from exc
    with archive:
        raw = _raw_members(archive)
        for info in archive.infolist():
            name = info.filename
            if info.is_dir() or name in raw or name.endswith(_TEXT_MEMBERS):
                continue
            payload = archive.read(info)
            found |= torch_file_globals(payload) if payload[:4] == b"PK\x03\x04" else pickle_globals(payload)
    return found


def _raw_members(archive: zipfile.ZipFile) -> set[str]:
    """Members the archive's own configs declare as raw tensor bytes (``use_pickle: false``)."""
    raw: set[str] = set()
    for info in archive.infolist():
        if not info.filename.endswith("_config.json"):
            continue
        try:
            config = json.loads(archive.read(info)).get("config", {})
        except (ValueError, AttributeError) as exc:
            raise CapsuleFormatError(f"{info.filename} in the torch.export archive is not valid JSON") from exc
        folder = info.filename.rsplit("/", 1)[0]
        for entry in config.values() if isinstance(config, dict) else []:
            if isinstance(entry, dict) and entry.get("use_pickle") is False and isinstance(entry.get("path_name"), str):
                raw.add(f"{folder}/{entry['path_name']}")
    return raw


class TorchExportFormat:
    """``torch.export`` programs, loaded with PyTorch's safe unpickler only."""

    name: ClassVar[str] = "torchexport"
    runs_code: ClassVar[bool] = False
    safety: ClassVar[int] = 10
    extensions: ClassVar[tuple[str, ...]] = (".pt2",)

    def supports(self, model: Any) -> bool:
        return is_exported_program(model)

    def save(self, model: Any, sink: MemberSink) -> SaveResult:
        import torch

        buffer = io.BytesIO()
        torch.export.save(model, buffer)
        data = buffer.getvalue()
        unsafe = unsafe_torch_globals(archive_globals(data))
        if unsafe:
            raise UnsupportedModelError(
                f"this exported program holds objects that only a full unpickler can restore ({unsafe}); "
                "export it without custom (TorchBind) objects, or save the module as safetensors instead."
            )
        sink.add(MEMBER, data)
        return SaveResult(details={"member": MEMBER}, types=[])

    def audit(self, source: MemberSource, details: dict[str, Any], options: LoadOptions) -> list[str]:
        return unsafe_torch_globals(archive_globals(source.read(main_member(source, details, MEMBER))))

    def load(self, source: MemberSource, details: dict[str, Any], options: LoadOptions) -> Any:
        import torch

        data = source.read(main_member(source, details, MEMBER))
        with _ENV_LOCK:
            before = os.environ.get("TORCH_FORCE_WEIGHTS_ONLY_LOAD")
            os.environ["TORCH_FORCE_WEIGHTS_ONLY_LOAD"] = "1"
            try:
                program = torch.export.load(io.BytesIO(data))
            except (pickle.UnpicklingError, RuntimeError, ValueError, KeyError, zipfile.BadZipFile) as exc:
                raise CapsuleFormatError(f"the torch.export archive could not be loaded safely: {exc}") from exc
            finally:
                if before is None:
                    del os.environ["TORCH_FORCE_WEIGHTS_ONLY_LOAD"]
                else:
                    os.environ["TORCH_FORCE_WEIGHTS_ONLY_LOAD"] = before
        if options.device not in (None, "cpu"):
            from torch.export.passes import move_to_device_pass

            program = move_to_device_pass(program, options.device)
        return program


FORMATS = (TorchExportFormat(),)
