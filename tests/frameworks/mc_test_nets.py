"""Small PyTorch modules the tests save and reload (importable by child processes too)."""

from __future__ import annotations

import torch


class TinyNet(torch.nn.Module):
    """Constructor arguments kept as attributes of the same name: what the safetensors format records."""

    def __init__(self, n_in: int, hidden: int = 8, n_out: int = 3, dropout: float = 0.0) -> None:
        super().__init__()
        self.n_in, self.hidden, self.n_out, self.dropout = n_in, hidden, n_out, dropout
        self.body = torch.nn.Sequential(torch.nn.Linear(n_in, hidden), torch.nn.ReLU(), torch.nn.Dropout(dropout))
        self.head = torch.nn.Linear(hidden, n_out)
        self.register_buffer("scale", torch.ones(n_out))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.body(x)) * self.scale


class ConfiguredNet(torch.nn.Module):
    """Arguments given back by get_config(), Keras style, and a weight tied to another."""

    def __init__(self, sizes: tuple[int, int]) -> None:
        super().__init__()
        self._sizes = sizes
        self.encode = torch.nn.Linear(sizes[0], sizes[1], bias=False)
        self.decode = torch.nn.Linear(sizes[1], sizes[0], bias=False)

    def get_config(self) -> dict[str, object]:
        return {"sizes": self._sizes}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.decode(torch.tanh(self.encode(x)))


class HiddenArgs(torch.nn.Module):
    """Forgets its constructor argument: cannot be rebuilt, so saving it is refused."""

    def __init__(self, width: int) -> None:
        super().__init__()
        self.layer = torch.nn.Linear(width, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layer(x)
