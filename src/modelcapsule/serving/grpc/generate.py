"""Regenerate ``grpc_service_pb2.py`` and ``grpc_service_pb2_grpc.py`` from ``grpc_service.proto``.

Run ``python -m modelcapsule.serving.grpc.generate`` after editing the ``.proto``; the test suite runs
:func:`generate` into a temporary folder and fails if the checked-in modules differ.
"""

from __future__ import annotations

import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
SRC = HERE.parents[2]
PROTO = "modelcapsule/serving/grpc/grpc_service.proto"
GENERATED = ("grpc_service_pb2.py", "grpc_service_pb2_grpc.py", "grpc_service_pb2.pyi")


def generate(out_dir: Path) -> list[Path]:
    """Run protoc (from grpcio-tools) on the ``.proto``; returns the files written under ``out_dir``."""
    from grpc_tools import protoc

    args = [
        "protoc",
        f"-I{SRC}",
        f"--python_out={out_dir}",
        f"--pyi_out={out_dir}",
        f"--grpc_python_out={out_dir}",
        str(SRC / PROTO),
    ]
    if protoc.main(args) != 0:
        raise RuntimeError(f"protoc failed on {PROTO}")
    return [out_dir / "modelcapsule" / "serving" / "grpc" / name for name in GENERATED]


def main() -> int:
    import shutil
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        for path in generate(Path(tmp)):
            shutil.copyfile(path, HERE / path.name)
            print(f"wrote {HERE / path.name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
