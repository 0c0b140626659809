"""The protocol registry: one table in the extension Registry shape, duplicates refused, and no two
adapters claim the same route."""

from __future__ import annotations

import pytest
from starlette.routing import Route

from modelcapsule.serving import DataPlane, Repository, ServerOptions
from modelcapsule.serving.rest import all_protocols, get_protocol, register_protocol

from .conftest import Models


def test_every_protocol_is_registered_once() -> None:
    assert [p.name for p in all_protocols()] == ["v2", "tfserving", "seldon", "plain", "mlflow"]
    with pytest.raises(ValueError, match="already registered"):
        register_protocol("v2", get_protocol("v2").routes)
    with pytest.raises(LookupError, match="unknown protocol 'soap'"):
        get_protocol("soap")


def test_no_two_adapters_claim_a_route(models: Models) -> None:
    plane = DataPlane(Repository([models.iris_path], ServerOptions()))
    owners: dict[tuple[str, str], str] = {}
    for protocol in all_protocols():
        routes = protocol.routes(plane)
        assert routes, f"protocol {protocol.name} has no routes"
        for route in routes:
            assert isinstance(route, Route)
            for method in sorted(route.methods or ()):
                key = (route.path, method)
                assert key not in owners, f"{key} claimed by {owners[key]} and {protocol.name}"
                owners[key] = protocol.name
