"""One virtualenv per peer server under ``benchmarks/.work/venvs/``, created by the benchmark itself.

Peers' dependencies conflict with ours and with each other (MLServer pins uvloop, Ray and KServe pin
their own protobuf and FastAPI...), so each gets its own venv with scikit-learn, joblib and numpy
pinned to the versions of this process: every peer then loads the very same joblib file and computes
the same predictions. A venv is reused while its pins are unchanged (``bench-pins.txt``); nothing in
``modelcapsule`` ever imports these packages.

    python -m benchmarks.serving.venvs            # create (or check) every peer's venv, print its python
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
VENVS = ROOT / "benchmarks" / ".work" / "venvs"

PEERS: dict[str, tuple[str, ...]] = {
    "mlflow": ("mlflow>=3,<4",),
    "bentoml": ("bentoml>=1.4,<1.5",),
    "litserve": ("litserve",),
    "ray": ("ray[serve]>=2.40",),
    "kserve": ("kserve",),
    "mlserver": ("mlserver==1.7.1", "mlserver-sklearn==1.7.1", "uvloop==0.21.0"),
}
"""Each peer's own packages (MLServer: uvloop 0.23 stops its inference workers from starting)."""


def same_model_pins() -> list[str]:
    """scikit-learn, joblib and numpy at this process's versions, so every peer loads the same file."""
    import joblib
    import numpy
    import sklearn

    return [f"scikit-learn=={sklearn.__version__}", f"joblib=={joblib.__version__}", f"numpy=={numpy.__version__}"]


def venv_python(peer: str) -> Path:
    return VENVS / peer / "bin" / "python"


def ensure_venv(peer: str, progress: Callable[[str], None] = print) -> Path | None:
    """The peer's venv ``bin`` directory, created if missing or stale; None if it cannot be installed."""
    folder = VENVS / peer
    pins = [*PEERS[peer], *same_model_pins()]
    stamp = folder / "bench-pins.txt"
    if venv_python(peer).exists() and stamp.exists() and stamp.read_text().split("\n")[:-1] == pins:
        return folder / "bin"
    progress(f"installing {peer} into {folder} ({' '.join(pins)}); once")
    log = folder.with_suffix(".install.log")
    folder.parent.mkdir(parents=True, exist_ok=True)
    try:
        subprocess.run([sys.executable, "-m", "venv", "--clear", str(folder)], check=True)
        with open(log, "wb") as out:
            subprocess.run([str(folder / "bin" / "pip"), "install", "--disable-pip-version-check", *pins],
                           check=True, timeout=1800, stdout=out, stderr=subprocess.STDOUT)
    except (subprocess.CalledProcessError, subprocess.TimeoutExpired) as exc:
        progress(f"{peer} could not be installed ({exc}); see {log}; its rows stay empty")
        return None
    stamp.write_text("\n".join(pins) + "\n")
    return folder / "bin"


def main(argv: list[str] | None = None) -> None:
    names = argv if argv else list(PEERS)
    for peer in names:
        print(peer, ensure_venv(peer))


if __name__ == "__main__":
    main(sys.argv[1:])
