"""Auditing a hostile file lists the offending names and imports nothing.

A child process imports modelcapsule, notes ``sys.modules``, audits every hostile pickle of the corpus
(inside a capsule, through the same format audit the loader runs, and as a plain stream through the
scanner), then notes ``sys.modules`` again: the two must be equal, and the names must be listed.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from hostile_corpus import PICKLE_CASES, build_capsule

from modelcapsule.errors import UntrustedTypesError

STREAM = "model/model.pkl"

_AUDITOR = """
import json, sys
from pathlib import Path
import modelcapsule.load
from modelcapsule.core.container import open_capsule
from modelcapsule.errors import CapsuleError
from modelcapsule.formats import LoadOptions, get_format
from modelcapsule.security.pickle_scan import scan_pickle
from modelcapsule.security.policy import DEFAULT_POLICY
import modelcapsule.security.pickle_rules  # the dry run's own rules, loaded on its first use

fmt = get_format("safepickle")
b"x".decode("cp437")  # the ZIP reader's codec for legacy member names, loaded lazily by the stdlib
options = LoadOptions(policy=DEFAULT_POLICY)
before = set(sys.modules)
results = {}
for capsule in sorted(Path(sys.argv[1]).glob("*.capsule")):
    entry = {}
    try:
        with open_capsule(capsule) as reader:
            entry["capsule"] = fmt.audit(reader, dict(reader.manifest.format), options)
    except CapsuleError as exc:
        entry["capsule_error"] = str(exc)
    try:
        entry["stream"] = list(scan_pickle(capsule.with_suffix(".pkl").read_bytes()).globals)
    except CapsuleError as exc:
        entry["stream_error"] = str(exc)
    results[capsule.stem] = entry
print(json.dumps({"results": results, "imported": sorted(set(sys.modules) - before)}))
"""


def test_audit_lists_offending_names_and_imports_nothing(tmp_path: Path, subprocess_env: dict[str, str]) -> None:
    for case, spec in PICKLE_CASES.items():
        payload = spec.build(tmp_path)
        (tmp_path / f"{case}.pkl").write_bytes(payload)
        build_capsule(tmp_path / f"{case}.capsule", {STREAM: payload},
                      details={"member": STREAM, "protocol": 5, "buffers": 0})
    done = subprocess.run([sys.executable, "-c", _AUDITOR, str(tmp_path)], env=subprocess_env, check=True,
                          capture_output=True, text=True, timeout=120)
    report = json.loads(done.stdout)
    assert report["imported"] == [], f"auditing imported {report['imported']}"
    assert set(report["results"]) == set(PICKLE_CASES)
    for case, spec in PICKLE_CASES.items():
        entry = report["results"][case]
        if spec.error is UntrustedTypesError:
            assert set(spec.names) <= set(entry["capsule"]), (case, entry)
            assert set(spec.names) <= set(entry["stream"]), (case, entry)
        else:
            text = entry.get("capsule_error", "")
            assert any(name in text for name in spec.names), (case, entry)
