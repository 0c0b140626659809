"""Server-rendered pages and model cards, shared by ``capsule serve`` and ``capsule registry serve``.

``card`` builds a model card from a capsule's manifest and plain-data members (loading nothing);
``markdown`` writes it for ``capsule card``; ``pages.routes(source)`` gives the Starlette routes of
the web pages (Jinja2 templates, the ``ui`` extra) over any :class:`~modelcapsule.ui.source.UISource`.
Importing this package imports neither Jinja2 nor Starlette.
"""

from __future__ import annotations

__all__: list[str] = []
