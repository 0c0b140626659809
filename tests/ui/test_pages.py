"""capsule serve's pages over HTTP: every page, its JSON twin, the try-it form without JavaScript, errors."""

from __future__ import annotations

import re

import requests


def test_every_page_has_a_json_twin_that_holds_what_the_page_shows(served):
    models = requests.get(f"{served}/models.json", timeout=10).json()
    assert [m["name"] for m in models["models"]] == ["diabetes", "iris", "old"]
    home = requests.get(f"{served}/", timeout=10).text
    assert '<link rel="alternate" type="application/json" href="/models.json">' in home
    iris = requests.get(f"{served}/models/iris.json", timeout=10).json()
    assert [(v["version"], v["state"]) for v in iris["model"]["versions"]] == [(2, "AVAILABLE"), (1, "AVAILABLE")]
    assert iris["model"]["aliases"] == {"stable": 1, "canary": 2}
    page = requests.get(f"{served}/models/iris", timeout=10).text
    for alias in ("stable", "canary"):
        assert alias in page
    card = requests.get(f"{served}/models/iris/versions/2.json", timeout=10).json()
    html = requests.get(f"{served}/models/iris/versions/2", timeout=10).text
    for chart in card["charts"]:
        assert f'id="chart-{chart["id"]}"' in html and f'id="spec-{chart["id"]}"' in html
    assert f"{card['metrics'][0]['mean']:.4f}" in html


def test_search_finds_by_substring_and_glob(served):
    def names(q):
        return [m["name"] for m in requests.get(f"{served}/models.json", params={"q": q}, timeout=10).json()["models"]]

    assert names("ir") == ["iris"]
    assert names("*s") == ["diabetes", "iris"]
    assert names("i*s") == ["iris"]
    assert names("nothing-like-it") == []
    assert "No model matches" in requests.get(f"{served}/", params={"q": "zzz"}, timeout=10).text


def test_try_it_form_works_without_javascript(served):
    answer = requests.post(f"{served}/models/iris/versions/2/predict", data={"rows": "[[5.1, 3.5, 1.4, 0.2]]"},
                           timeout=10)
    assert answer.status_code == 200 and answer.headers["content-type"].startswith("text/html")
    output = re.search(r"<output[^>]*>(.*?)</output>", answer.text, re.S).group(1)
    assert output.splitlines()[0] == "predict: [0]"


def test_try_it_form_refusals_are_400_with_the_reason(served):
    url = f"{served}/models/iris/versions/2/predict"
    short = requests.post(url, data={"rows": "[[5.1, 3.5]]"}, timeout=10)
    assert short.status_code == 400 and "expected rows of 4 values" in short.text
    assert "[[5.1, 3.5]]" in short.text  # the rows come back in the form, to fix
    not_json = requests.post(url, json={"rows": "nope"}, timeout=10)
    assert not_json.status_code == 400 and "non-empty JSON list" in not_json.json()["error"]
    huge = requests.post(url, data={"rows": "[" + "1," * 600_000 + "1]"}, timeout=10)
    assert huge.status_code == 400 and "at most" in huge.text


def test_unknown_models_and_versions_are_404_in_html_and_json(served):
    assert requests.get(f"{served}/models/nope", timeout=10).status_code == 404
    missing = requests.get(f"{served}/models/nope.json", timeout=10)
    assert missing.status_code == 404 and "serves no model named 'nope'" in missing.json()["error"]
    assert requests.get(f"{served}/models/iris/versions/9", timeout=10).status_code == 404
    assert requests.get(f"{served}/models/iris/versions/x.json", timeout=10).status_code == 404


def test_an_old_capsule_renders_and_says_what_is_missing(served):
    html = requests.get(f"{served}/models/old/versions/1", timeout=10).text
    assert "Missing from this capsule" in html and "No evaluation stored" in html


def test_compare_marks_what_changed(served):
    doc = requests.get(f"{served}/models/iris/compare.json", params={"a": 1, "b": 2}, timeout=10).json()
    sections = {s["title"]: s for s in doc["sections"]}
    c = next(r for r in sections["Parameters"]["rows"] if r["key"] == "C")
    assert c["differs"] and (c["a"], c["b"]) == ("0.0500", "1.0000")
    assert not any(r["differs"] for r in sections["Environment"]["rows"])
    html = requests.get(f"{served}/models/iris/compare", params={"a": 1, "b": 2}, timeout=10).text
    assert html.count('class="differs"') == sum(s["differences"] for s in doc["sections"])
