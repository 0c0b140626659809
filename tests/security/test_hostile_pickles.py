"""Hostile pickles: every case of the corpus is refused with the exact error type, the message names the
offending global (or construct), and the canary file the payload would create never appears.

Each case is written opcode by opcode (tests/security/hostile_corpus.py) and embedded in a capsule
whose manifest hashes it correctly, so the hash check is not what stops it. A separate test proves the
payloads are live: loaded by plain ``pickle`` (or ``joblib``) they do create the canary.
"""

from __future__ import annotations

import fractions
import subprocess
import sys
import time
from pathlib import Path

import pytest
from hostile_corpus import PICKLE_CASES, build_capsule, canary_path

import modelcapsule as mc
from modelcapsule.errors import CapsuleError, CapsuleFormatError, UntrustedTypesError
from modelcapsule.security.policy import DEFAULT_POLICY, restricted_loads

STREAM = "model/model.pkl"
DETAILS = {"member": STREAM, "protocol": 5, "buffers": 0}


def hostile_capsule(tmp: Path, payload: bytes, layout: str = "zip") -> Path:
    return build_capsule(tmp / f"hostile.{layout}.capsule", {STREAM: payload}, layout=layout, details=DETAILS)


@pytest.mark.parametrize("layout", ["zip", "dir"])
@pytest.mark.parametrize("case", sorted(PICKLE_CASES))
def test_hostile_pickle_in_a_capsule_is_refused_and_runs_nothing(tmp_path: Path, case: str, layout: str) -> None:
    spec = PICKLE_CASES[case]
    path = hostile_capsule(tmp_path, spec.build(tmp_path), layout)
    with pytest.raises(CapsuleError) as info:
        mc.load(path)
    assert type(info.value) is spec.error, f"{case}: {type(info.value).__name__}: {info.value}"
    for name in spec.names:
        assert name in str(info.value), f"{case}: {name!r} not in {info.value}"
    if isinstance(info.value, UntrustedTypesError):
        assert set(spec.names) <= set(info.value.names)
    time.sleep(0.01 if "Popen" not in case else 0.3)  # a started process would have touched the file by now
    assert not canary_path(tmp_path).exists()


@pytest.mark.parametrize("case", sorted(PICKLE_CASES))
def test_the_restricted_unpickler_alone_refuses_every_case(tmp_path: Path, case: str) -> None:
    """Defence in depth: without the audit step, construction itself still refuses (or cannot run)."""
    spec = PICKLE_CASES[case]
    with pytest.raises(CapsuleError):
        restricted_loads(spec.build(tmp_path), DEFAULT_POLICY, source=STREAM)
    assert not canary_path(tmp_path).exists()


def test_a_class_is_not_modified_by_a_refused_build(tmp_path: Path) -> None:
    """Regression: BUILD with slot state on a global ran setattr on the trusted class itself."""
    before = fractions.Fraction.__repr__
    path = hostile_capsule(tmp_path, PICKLE_CASES["BUILD-on-a-trusted-class"].build(tmp_path))
    with pytest.raises(CapsuleFormatError, match="modifies fractions.Fraction itself"):
        mc.load(path)
    assert fractions.Fraction.__repr__ is before


def test_a_registered_extension_code_is_held_to_the_policy(tmp_path: Path) -> None:
    """Even when the process has registered a copyreg extension, both the audit and the unpickler resolve
    it to its name and hold it to the policy (unregistered codes are refused outright by the corpus)."""
    import copyreg

    copyreg.add_extension("os", "system", 0xF1)
    try:
        raw = b"\x80\x05\x82\xf1(\x8c\x04truet" + b"R."
        with pytest.raises(UntrustedTypesError, match="os.system"):
            restricted_loads(raw, DEFAULT_POLICY)
        with pytest.raises(UntrustedTypesError, match="os.system"):
            mc.load(hostile_capsule(tmp_path, raw))
    finally:
        copyreg.remove_extension("os", "system", 0xF1)


_LIVE_RUNNER = """
import io, json, pickle, sys
mode, path = sys.argv[1], sys.argv[2]
raw = open(path, "rb").read()
try:
    if mode == "pickle":
        pickle.loads(raw)
    elif mode == "twice":
        f = io.BytesIO(raw)
        pickle.load(f)
        pickle.load(f)
    elif mode == "joblib":
        import joblib
        joblib.load(path)
except Exception:
    pass
"""


@pytest.mark.parametrize("case", sorted(c for c, spec in PICKLE_CASES.items() if spec.live))
def test_the_payloads_are_live(tmp_path: Path, case: str) -> None:
    """Loaded by the ordinary loaders, each live payload really runs and creates the canary."""
    payload = tmp_path / "payload.bin"
    payload.write_bytes(PICKLE_CASES[case].build(tmp_path))
    subprocess.run([sys.executable, "-c", _LIVE_RUNNER, PICKLE_CASES[case].live, str(payload)], check=True,
                   timeout=60, capture_output=True)
    deadline = time.monotonic() + 5
    while not canary_path(tmp_path).exists() and time.monotonic() < deadline:
        time.sleep(0.05)  # Popen payloads touch the file from a child process
    assert canary_path(tmp_path).exists(), f"{case} did not run under plain {PICKLE_CASES[case].live}"


def test_the_corpus_has_at_least_forty_distinct_cases() -> None:
    from test_hostile_containers import CASES as CONTAINER_CASES
    from test_trusted_type_abuse import CASES as ABUSE_CASES

    assert len(PICKLE_CASES) + len(CONTAINER_CASES) + len(ABUSE_CASES) >= 40
