"""``edge-runner bundle DIR``: an offline bundle (wheels + install script) for an air-gapped box.

The work is in :mod:`edge_runner.bundle`; this module parses the options and prints what was
made and the line to run on the box.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

__all__ = ["register"]


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``bundle``."""
    bundle = sub.add_parser(
        "bundle",
        help="make an offline bundle: wheels of edge-runner and its dependencies + install.sh",
        description="Write into DIR a wheel of edge-runner and of every dependency, a "
        "requirements.txt with exact pins and sha256 hashes, install.sh / install.ps1 and "
        "MANIFEST.json. Carry DIR to a machine with no network and run `sh DIR/install.sh "
        "VENV_DIR` there (or `pip install --no-index --find-links DIR edge-runner`). Building "
        "needs the package index, or --find-links with the wheels.",
    )
    bundle.add_argument("dest", type=Path, metavar="DIR", help="the bundle folder (new or empty)")
    bundle.add_argument(
        "--extras",
        metavar="LIST",
        help=(
            "optional parts to include, comma-separated: tui, gpu, mcp, fastmcp, torch "
            "(default: none)"
        ),
    )
    bundle.add_argument(
        "--platform",
        action="append",
        default=[],
        metavar="TAG",
        help="the box's pip platform tag, e.g. manylinux2014_x86_64 or manylinux_2_28_aarch64 "
        "(repeatable; default: this machine). Only ready-made wheels can be fetched for it.",
    )
    bundle.add_argument(
        "--python",
        dest="python_version",
        metavar="X.Y",
        help="the box's Python version, e.g. 3.11 (default: the one running this)",
    )
    bundle.add_argument(
        "--source",
        type=Path,
        metavar="PATH",
        help="a checkout or a .whl of edge-runner (default: the checkout this edge-runner is "
        "installed from when editable, else the installed files)",
    )
    bundle.add_argument(
        "--find-links",
        action="append",
        default=[],
        type=Path,
        metavar="WHEELS",
        help="build from the wheels in this folder and not from the package index (repeatable)",
    )
    bundle.add_argument(
        "--force",
        action="store_true",
        help="write into a non-empty DIR (an earlier bundle's files are replaced, others kept)",
    )
    bundle.set_defaults(func=_bundle)


def _bundle(args: argparse.Namespace) -> int:
    from edge_runner.bundle import BundleOptions, build_bundle, parse_extras

    options = BundleOptions(
        dest=args.dest,
        extras=parse_extras(args.extras),
        platforms=tuple(args.platform),
        python_version=args.python_version,
        source=args.source,
        find_links=tuple(args.find_links),
        force=args.force,
    )
    _warn_cross_os(options.platforms)
    made = build_bundle(options, say=lambda line: print(f"bundle: {line}", file=sys.stderr))
    target = made.manifest["target"]
    spec = f"'edge-runner[{','.join(options.extras)}]'" if options.extras else "edge-runner"
    print(
        f"Bundle of edge-runner {made.version} in {made.path}: {len(made.wheels)} wheels, "
        f"{made.size / 1e6:.1f} MB, for Python {target['python']} on "
        f"{', '.join(target['platforms'])}"
        + (f" (extras: {', '.join(options.extras)})" if options.extras else "")
        + "."
    )
    print("On the box (no network needed):")
    print(f"  sh {made.path}/install.sh /opt/edge-runner      # a venv, then the self-test")
    print(f"  pip install --no-index --find-links {made.path} {spec}   # or by hand")
    return 0


def _warn_cross_os(platforms: tuple[str, ...]) -> None:
    """pip evaluates `sys_platform` markers for the machine it runs on, not for --platform."""
    here = sys.platform
    for tag in platforms:
        other = (tag.startswith("win") and here != "win32") or (
            tag.startswith("macosx") and here != "darwin"
        )
        other = other or ("linux" in tag and not here.startswith("linux"))
        if other:
            print(
                f"bundle: warning: --platform {tag} is another operating system than this "
                f"one ({here}); pip picks dependencies by this machine's OS, so OS-specific "
                "ones (keyring's) may be wrong: build the bundle on the same OS as the box",
                file=sys.stderr,
            )
