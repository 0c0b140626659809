"""The web pages as Starlette routes over a :class:`~modelcapsule.ui.source.UISource`.

Every page has a JSON twin at the same path plus ``.json`` (as Datasette does): the HTML is a
rendering of exactly that data. Pages work without JavaScript (the try-it form posts and the answer
page shows the outputs); with it, charts are drawn by vega-embed and the form answers in place.

    /                                       models, with search (?q=) and tag filters (?tag=k=v)
    /models/{name}                          versions, aliases, the alias history as a timeline
    /models/{name}/versions/{v}             the model card (+ the try-it form when the source predicts)
    /models/{name}/compare?a=V&b=W          two versions side by side
    POST /models/{name}/versions/{v}/predict   the try-it form (HTML answer, or JSON if asked)
"""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, quote

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles

from .compare import compare_cards
from .source import ModelInfo, NotFound, PredictionError, UISource, matches

if TYPE_CHECKING:
    import jinja2

__all__ = ["STATIC_PREFIX", "routes"]

HERE = Path(__file__).parent
STATIC_PREFIX = "/ui/static"
MAX_FORM_BYTES = 1 << 20

def _number(value: Any, digits: int = 4) -> str:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return "—" if value is None else str(value)
    return str(value) if isinstance(value, int) else f"{value:.{digits}f}"


@cache
def _templates() -> jinja2.Environment:
    """The templates, set up on the first page asked for: a server that is never browsed (most are)
    imports no Jinja2."""
    import jinja2

    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(HERE / "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["q"] = lambda s: quote(str(s), safe="")
    env.filters["num"] = _number
    env.filters["json"] = lambda v: json.dumps(v, ensure_ascii=False, default=str)
    return env


def _wants_json(request: Request) -> bool:
    accept = request.headers.get("accept", "")
    return "application/json" in accept and "text/html" not in accept


def _page(request: Request, source: UISource, template: str, data: dict[str, Any], status: int = 200) -> Response:
    base = request.scope.get("root_path", "").rstrip("/")
    html = _templates().get_template(template).render(base=base, static=base + STATIC_PREFIX, title=source.title,
                                              links=source.links, path=request.url.path, **data)
    return HTMLResponse(html, status_code=status)


def _error(request: Request, source: UISource, status: int, message: str, as_json: bool) -> Response:
    if as_json:
        return JSONResponse({"error": message}, status_code=status)
    return _page(request, source, "error.html", {"status": status, "message": message}, status)


def _version(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise NotFound(f"{text!r} is not a version number (versions are 1, 2, 3...).")
    return int(text)


def _tag_filters(request: Request) -> dict[str, str]:
    tags = {}
    for item in request.query_params.getlist("tag"):
        key, _, value = item.partition("=")
        if key:
            tags[key] = value
    return tags


def routes(source: UISource) -> list[BaseRoute]:
    """The pages, their JSON twins and the static files, ready to add to a Starlette app."""

    async def models(request: Request) -> Response:
        if request.path_params.get("fmt", "json") != "json":
            return _error(request, source, 404, "pages come as HTML or, with .json, as JSON.", False)
        as_json = "fmt" in request.path_params
        query = request.query_params.get("q", "")
        tags = _tag_filters(request)
        every: list[ModelInfo] = list(await run_in_threadpool(source.models))
        found = [m for m in every if matches(m, query, tags)]
        all_tags = sorted({(k, v) for m in every for k, v in m.tags.items()})
        data = {"models": [m.to_dict() for m in found], "query": query, "tags": tags, "total": len(every)}
        if as_json:
            return JSONResponse(data)
        return _page(request, source, "models.html", {**data, "all_tags": all_tags})

    async def model(request: Request) -> Response:
        name = request.path_params["name"]
        as_json = name.endswith(".json")
        name = name.removesuffix(".json") if as_json else name
        try:
            info = await run_in_threadpool(source.model, name)
            events = await run_in_threadpool(source.history, name)
        except NotFound as exc:
            return _error(request, source, 404, str(exc), as_json)
        data = {"model": info.to_dict(), "history": [e.to_dict() for e in events]}
        if as_json:
            return JSONResponse(data)
        return _page(request, source, "model.html", data)

    async def version(request: Request) -> Response:
        name, text = request.path_params["name"], request.path_params["version"]
        as_json = text.endswith(".json")
        try:
            number = _version(text.removesuffix(".json"))
            card = await run_in_threadpool(source.card, name, number)
            info = await run_in_threadpool(source.model, name)
        except NotFound as exc:
            return _error(request, source, 404, str(exc), as_json)
        if as_json:
            return JSONResponse(card)
        return _page(request, source, "card.html", _card_data(source, info, number, card))

    async def compare(request: Request) -> Response:
        name = request.path_params["name"]
        if request.path_params.get("fmt", "json") != "json":
            return _error(request, source, 404, "pages come as HTML or, with .json, as JSON.", False)
        as_json = "fmt" in request.path_params
        try:
            info = await run_in_threadpool(source.model, name)
            numbers = [v.version for v in info.versions]
            a = _version(request.query_params.get("a") or str(numbers[1] if len(numbers) > 1 else numbers[0]))
            b = _version(request.query_params.get("b") or str(numbers[0]))
            card_a = await run_in_threadpool(source.card, name, a)
            card_b = await run_in_threadpool(source.card, name, b)
        except (NotFound, IndexError) as exc:
            return _error(request, source, 404, str(exc) or f"model {name!r} has no versions", as_json)
        data = {"name": name, "a": a, "b": b, **compare_cards(card_a, card_b)}
        if as_json:
            return JSONResponse(data)
        return _page(request, source, "compare.html", {**data, "model": info.to_dict(), "card_a": card_a,
                                                        "card_b": card_b})

    async def predict(request: Request) -> Response:
        name, text = request.path_params["name"], request.path_params["version"]
        as_json = _wants_json(request) or "application/json" in request.headers.get("content-type", "")
        submitted = ""
        try:
            number = _version(text)
            rows, submitted = await _rows(request)
            outputs = await source.predict(name, number, rows)
        except NotFound as exc:
            return _error(request, source, 404, str(exc), as_json)
        except PredictionError as exc:
            if as_json:
                return JSONResponse({"error": str(exc)}, status_code=400)
            return await _card_page(request, source, name, number, {"error": str(exc)}, submitted, 400)
        if as_json:
            return JSONResponse({"outputs": outputs})
        return await _card_page(request, source, name, number, {"outputs": outputs}, submitted)

    static = StaticFiles(directory=HERE / "static")
    return [
        Route("/", models, methods=["GET"]),
        Route("/models.{fmt:str}", models, methods=["GET"]),
        Route("/models/{name}/compare.{fmt:str}", compare, methods=["GET"]),
        Route("/models/{name}/compare", compare, methods=["GET"]),
        Route("/models/{name}/versions/{version}/predict", predict, methods=["POST"]),
        Route("/models/{name}/versions/{version}", version, methods=["GET"]),
        Route("/models/{name}", model, methods=["GET"]),
        Mount(STATIC_PREFIX, app=static, name="ui-static"),
    ]


def _card_data(source: UISource, info: ModelInfo, number: int, card: dict[str, Any],
               answer: dict[str, Any] | None = None) -> dict[str, Any]:
    golden = card.get("golden_sample") or {}
    first = next(iter((golden.get("inputs") or {}).values()), None)
    example = json.dumps(first["rows"][:2]) if first else "[[]]"
    evaluation = card.get("evaluation") or {}
    view = {  # table rows the template shows as they are
        "per_class": [[c["class"], c["precision"], c["recall"], c["f1"], c["support"]]
                      for c in evaluation.get("per_class", [])],
        "params": [[k, v if isinstance(v, str) else json.dumps(v)] for k, v in sorted(card["model"]["params"].items())],
        "files": [[f["member"], f["size"], f["sha256"][:16] + "…"] for f in card["files"]],
    }
    return {"model": info.to_dict(), "version": number, "card": card, "can_predict": source.can_predict,
            "example": example, "answer": answer, "versions": [v.version for v in info.versions], "view": view}


async def _card_page(request: Request, source: UISource, name: str, number: int, answer: dict[str, Any],
                     submitted: str, status: int = 200) -> Response:
    """The card page again, with the try-it answer (or error) under the form and the rows as sent."""
    try:
        card = await run_in_threadpool(source.card, name, number)
        info = await run_in_threadpool(source.model, name)
    except NotFound as exc:
        return _error(request, source, 404, str(exc), False)
    data = _card_data(source, info, number, card, answer)
    if submitted:
        data["example"] = submitted
    return _page(request, source, "card.html", data, status)


async def _rows(request: Request) -> tuple[Any, str]:
    """The try-it rows and the text they came in: a JSON body ``{"rows": [...]}``, or the urlencoded form
    field ``rows`` holding JSON (parsed here, so the pages need no multipart library)."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > MAX_FORM_BYTES:
        raise PredictionError(f"the request is {int(declared):,} bytes; the try-it form takes at most "
                              f"{MAX_FORM_BYTES:,}.")
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_FORM_BYTES:
            raise PredictionError(f"the request is over {MAX_FORM_BYTES:,} bytes, the try-it form's limit.")
    if "application/json" in request.headers.get("content-type", ""):
        text = body.decode("utf-8", "replace")
        try:
            doc = json.loads(text)
        except ValueError as exc:
            raise PredictionError(f"the body is not JSON: {exc}") from None
        rows = doc.get("rows") if isinstance(doc, dict) else None
    else:
        fields = parse_qs(body.decode("utf-8", "replace"), keep_blank_values=True)
        text = (fields.get("rows") or [""])[0]
        try:
            rows = json.loads(text)
        except ValueError as exc:
            raise PredictionError(f"rows must be JSON, e.g. [[5.1, 3.5, 1.4, 0.2]]: {exc}") from None
    if not isinstance(rows, list) or not rows:
        raise PredictionError("rows must be a non-empty JSON list of rows, e.g. [[5.1, 3.5, 1.4, 0.2]].")
    return rows, text
