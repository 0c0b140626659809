"""``python -m modelcapsule`` runs the ``capsule`` command line."""

from modelcapsule.cli import main

main()
