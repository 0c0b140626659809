"""The soak benchmark, one minute long: a registry-backed server with two workers under c=32, the alias
moving, workers SIGKILLed and versions registered meanwhile, answers every request (but those in flight
on a killed worker) and neither its memory nor its open files grow."""

from __future__ import annotations

from pathlib import Path

import pytest
from benchmarks.soak import render, run


@pytest.mark.slow
def test_a_minute_of_load_and_faults_fails_no_request(tmp_path: Path) -> None:
    result = run(1.0, concurrency=32, alias_every=15, kill_every=25, register_every=10, window=20,
                 progress=lambda _: None)
    report = render(result, "in the test suite")
    (tmp_path / "soak.md").write_text(report)
    assert result.requests > 1000 and len(result.kills) == 2 and result.alias_moves >= 3, report
    assert result.failed == [], report
    for role, (rss, fds) in result.growth.items():
        assert rss <= 0.05 and fds <= 0.05, f"{role} grew: {report}"
