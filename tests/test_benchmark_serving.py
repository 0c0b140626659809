"""The serving benchmark's module imports and renders its table; its timings are never run in the suite."""

from __future__ import annotations

import math

from benchmarks.serving import Check, Measurement, render_checks, render_row, wrk_script


def test_a_row_shows_rate_median_and_tail_latency_per_load_point() -> None:
    cells = [
        Measurement("minimal Starlette/uvicorn", "forest", 1, 16, 251.4, 62.5, 118.0),
        None,
        Measurement("minimal Starlette/uvicorn", "forest", 100, 16, 7.25, 2204.0, 2990.0, errors=3),
    ]
    assert render_row("minimal Starlette/uvicorn", cells) == (
        "| minimal Starlette/uvicorn | 251 (62 / 118) | – | 7.2 (2204 / 2990) **3 errors** |"
    )


def test_sub_10_ms_latencies_keep_two_decimals_and_missing_ones_a_dash() -> None:
    fast = Measurement("HTTP floor", "forest", 1, 1, 4830.0, 0.2, 3.94)
    assert render_row("HTTP floor", [fast]) == "| HTTP floor | 4,830 (0.20 / 3.94) |"
    unmeasured = Measurement("gRPC", "forest", 1, 16, 0.0, math.nan, math.nan)
    assert render_row("gRPC", [unmeasured]) == "| gRPC | 0.0 (– / –) |"


def test_acceptance_rows_say_holds_does_not_hold_or_open() -> None:
    table = render_checks([
        Check("batching ≥ 8× minimal", True, "2,000 vs 250 req/s = 8.00×"),
        Check("≥ 20× Flask", False, "2,000 vs 105 req/s = 19.05×"),
        Check("ONNX ≥ 50% of the floor", None, "no --runtime onnx"),
    ])
    assert table.splitlines()[2:] == [
        "| batching ≥ 8× minimal | **holds** | 2,000 vs 250 req/s = 8.00× |",
        "| ≥ 20× Flask | **does not hold** | 2,000 vs 105 req/s = 19.05× |",
        "| ONNX ≥ 50% of the floor | **open** | no --runtime onnx |",
    ]


def test_the_wrk_script_posts_the_body_file_and_reports_percentiles_as_json() -> None:
    script = wrk_script("/tmp/body.json")
    assert 'wrk.method = "POST"' in script
    assert 'io.open("/tmp/body.json", "rb")' in script
    assert "latency:percentile(99)" in script
