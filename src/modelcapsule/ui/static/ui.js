// modelcapsule pages: progressive enhancement only. Without this script every page still works: charts
// show their numbers, and the try-it form posts and the answer page shows the outputs.
"use strict";

function drawCharts() {
  if (typeof vegaEmbed !== "function") return;
  for (const el of document.querySelectorAll(".vega[data-spec]")) {
    const spec = JSON.parse(document.getElementById(el.dataset.spec).textContent);
    vegaEmbed(el, spec, {actions: false, renderer: "svg"})
      .then(() => el.classList.add("drawn"))
      .catch((err) => { el.textContent = "The chart could not be drawn (" + err + "); its numbers are below."; });
  }
}

function enhanceTryForms() {
  for (const form of document.querySelectorAll("form.try")) {
    form.addEventListener("submit", async (event) => {
      event.preventDefault();  // answer in place instead of loading the answer page
      const out = form.querySelector("output");
      out.classList.remove("problem");
      out.textContent = "…";
      try {
        const response = await fetch(form.action, {
          method: "POST",
          headers: {"Accept": "application/json", "Content-Type": "application/x-www-form-urlencoded"},
          body: new URLSearchParams(new FormData(form)),
        });
        const body = await response.json();
        if (response.ok) {
          out.textContent = Object.entries(body.outputs)
            .map(([name, value]) => name + ": " + JSON.stringify(value)).join("\n");
        } else {
          out.classList.add("problem");
          out.textContent = body.error || ("HTTP " + response.status);
        }
      } catch (err) {
        out.classList.add("problem");
        out.textContent = String(err);
      }
    });
  }
}

window.addEventListener("DOMContentLoaded", () => { enhanceTryForms(); });
window.addEventListener("load", drawCharts);  // the deferred chart libraries have run by then
