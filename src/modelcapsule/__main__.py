"""``python -m modelcapsule`` runs the ``capsule`` command line."""

from .cli import main

main()
