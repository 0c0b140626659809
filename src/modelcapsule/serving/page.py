"""The small HTML page at ``/``: models, versions, states, signatures, and a form to try a prediction.

The form posts to the V2 ``/infer`` route with ``fetch`` so the page needs no server-side state. All
text from manifests is HTML-escaped.
"""

from __future__ import annotations

import html
import json

from ..types import TensorSpec
from .dataplane import DataPlane
from .dtypes import numpy_to_v2

__all__ = ["render_index"]

_STYLE = (
    "body{font-family:system-ui,sans-serif;margin:2rem;max-width:60rem}table{border-collapse:collapse}"
    "td,th{border:1px solid #ccc;padding:.25rem .5rem;text-align:left}code,textarea{font-family:monospace}"
    ".AVAILABLE{color:#070}.END{color:#a00}textarea{width:100%;height:6rem}"
)

_SCRIPT = """
async function tryModel(form) {
  const out = form.querySelector('pre');
  let data;
  try { data = JSON.parse(form.rows.value); } catch (e) { out.textContent = 'not JSON: ' + e; return false; }
  const shape = [data.length].concat(Array.isArray(data[0]) ? [data[0].length] : []);
  const tensor = {name: form.input.value, datatype: form.datatype.value, shape: shape, data: data.flat()};
  const body = {inputs: [tensor]};
  const init = {method: 'POST', headers: {'Content-Type': 'application/json'}, body: JSON.stringify(body)};
  const r = await fetch('/v2/models/' + encodeURIComponent(form.model.value) + '/infer', init);
  out.textContent = JSON.stringify(await r.json(), null, 2);
  return false;
}
"""


def _form_datatype(spec: TensorSpec) -> str:
    """The V2 datatype the form sends: the input's own, FP64 for all-numeric tables, else BYTES."""
    if spec.columns is None:
        return numpy_to_v2(spec.dtype)
    numeric = all(c.dtype.startswith(("int", "uint", "float", "bool")) for c in spec.columns)
    return "FP64" if numeric else "BYTES"


def render_index(dataplane: DataPlane) -> str:
    """The whole page as a string."""
    e = html.escape
    parts = [
        "<!doctype html><html><head><meta charset='utf-8'><title>modelcapsule</title>",
        f"<style>{_STYLE}</style>",
        f"<script>{_SCRIPT}</script></head><body><h1>modelcapsule</h1>",
    ]
    if not dataplane.models:
        parts.append("<p>No models are served.</p>")
    for name, entry in sorted(dataplane.models.items()):
        parts.append(f"<h2>{e(name)}</h2><table><tr><th>version</th><th>state</th><th>labels</th><th>error</th></tr>")
        labels = {v: [lab for lab, n in entry.config.labels.items() if n == v] for v in entry.versions}
        for number, status in sorted(entry.versions.items()):
            parts.append(
                f"<tr><td>{number}</td><td class='{status.state.value}'>{status.state.value}</td>"
                f"<td>{e(', '.join(labels.get(number, [])))}</td><td>{e(status.error)}</td></tr>"
            )
        parts.append("</table>")
        available = entry.available()
        if not available or available[0].signature is None:
            continue
        sig = available[0].signature
        parts.append(
            "<p>Inputs: "
            + ", ".join(
                f"<code>{e(s.name)}</code> {e(s.dtype)} {e(json.dumps(list(s.shape)))}"
                + (f" columns {e(', '.join(c.name for c in s.columns))}" if s.columns else "")
                for s in sig.inputs
            )
            + "<br>Outputs: "
            + ", ".join(f"<code>{e(s.name)}</code> {e(s.dtype)}" for s in sig.outputs)
            + "</p>"
        )
        first = sig.inputs[0]
        datatype = _form_datatype(first)
        width = first.shape[1] if len(first.shape) == 2 and first.shape[1] > 0 else 1
        example = json.dumps([[0] * width])
        parts.append(
            "<form onsubmit='return tryModel(this)'>"
            f"<input type='hidden' name='model' value='{e(name)}'>"
            f"<input type='hidden' name='input' value='{e(first.name)}'>"
            f"<input type='hidden' name='datatype' value='{e(datatype)}'>"
            f"<label>Rows (JSON list of lists)<textarea name='rows'>{e(example)}</textarea></label>"
            "<button>Predict</button><pre></pre></form>"
        )
    parts.append(
        "<p><a href='/openapi.json'>OpenAPI</a> · <a href='/metrics'>metrics</a> · "
        "<a href='/v2/health/ready'>ready</a></p></body></html>"
    )
    return "".join(parts)
