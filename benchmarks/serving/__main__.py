"""``python -m benchmarks.serving``: see :mod:`benchmarks.serving`."""

from .core import main

main()
