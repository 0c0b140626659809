"""A module whose import leaves a trace: proves that a refused load imported nothing."""

from __future__ import annotations

import os
from pathlib import Path

import torch

marker = os.environ.get("MC_TEST_MARKER")
if marker:
    Path(marker).write_text("imported")


class Net(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.layer = torch.nn.Linear(2, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layer(x)
