"""The capsule as data: manifest, container, members, golden sample, environment, provenance.

The bottom layer: it imports nothing from the rest of the package but ``errors`` and ``types``, and no
optional dependency. ``checks_on_record`` keeps the record of checks that already passed on an
unchanged file; ``extensions`` is the one registry shape every extension point uses;
``save_redirect`` is how ``capsule retrain`` sends a script's own save to a new path.
"""
