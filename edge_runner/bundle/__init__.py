"""Offline bundles: a wheelhouse of edge-runner and its dependencies, to install with no network.

- :mod:`~edge_runner.bundle.build` builds one (``edge-runner bundle DIR``);
- :mod:`~edge_runner.bundle.files` writes its files besides the wheels (pinned requirements,
  install scripts, README, manifest, SHA256SUMS);
- :mod:`~edge_runner.bundle.source` finds where the edge-runner wheel comes from (a checkout, a
  ``.whl`` or an installation).

Like its modules, the package imports only the standard library (and our error tree).
"""

from __future__ import annotations

from edge_runner.bundle.build import (
    BUNDLE_FILES,
    Bundle,
    BundleOptions,
    WheelFile,
    build_bundle,
    default_source,
    parse_extras,
)

__all__ = [
    "BUNDLE_FILES",
    "Bundle",
    "BundleOptions",
    "WheelFile",
    "build_bundle",
    "default_source",
    "parse_extras",
]
