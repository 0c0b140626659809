"""Objects that would run code if a file holding them were loaded naively."""

from __future__ import annotations

import os
from pathlib import Path


class CanaryCommand:
    """Pickles as a call to ``os.system`` that creates ``path``: the file exists only if code ran."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __reduce__(self) -> tuple[object, tuple[str]]:
        return os.system, (f"touch {self.path}",)
