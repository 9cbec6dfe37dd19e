"""Regenerate edge_runner/proto stubs from tunnel.proto.

Usage: ``python tools/gen_proto.py [--check]``. With ``--check`` it generates into a temporary
folder and exits 1 when the committed stubs differ (the test suite runs it that way).
"""

from __future__ import annotations

import filecmp
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PROTO_DIR = ROOT / "edge_runner" / "proto"
OUTPUTS = ("tunnel_pb2.py", "tunnel_pb2.pyi", "tunnel_pb2_grpc.py")


def generate(out: Path) -> None:
    """Run protoc (from grpcio-tools) on tunnel.proto, writing the stubs into ``out``."""
    from grpc_tools import protoc  # dev extra only

    args = [
        "protoc",
        f"-I{PROTO_DIR}",
        f"--python_out={out}",
        f"--pyi_out={out}",
        f"--grpc_python_out={out}",
        str(PROTO_DIR / "tunnel.proto"),
    ]
    if protoc.main(args) != 0:
        raise SystemExit("protoc failed")
    grpc_stub = out / "tunnel_pb2_grpc.py"
    # protoc emits an absolute import; make it package-relative so the stubs work installed.
    text = grpc_stub.read_text().replace(
        "import tunnel_pb2 as tunnel__pb2", "from . import tunnel_pb2 as tunnel__pb2"
    )
    grpc_stub.write_text(text)


def main() -> int:
    """Generate in place, or compare with ``--check``."""
    if "--check" in sys.argv[1:]:
        with tempfile.TemporaryDirectory() as tmp:
            generate(Path(tmp))
            stale = [
                name
                for name in OUTPUTS
                if not (PROTO_DIR / name).exists()
                or not filecmp.cmp(Path(tmp) / name, PROTO_DIR / name, shallow=False)
            ]
        if stale:
            print(f"stale stubs: {', '.join(stale)}; run `python tools/gen_proto.py`")
            return 1
        return 0
    generate(PROTO_DIR)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
