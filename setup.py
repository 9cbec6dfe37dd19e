"""The one part of the build pyproject.toml cannot say: ``tui/`` installs as ``edge_runner_tui``.

The dashboard's sources stay in the top-level ``tui/`` folder, but a bare ``tui`` package in
site-packages would collide with any other project's ``tui``. In pyproject.toml a package list
is either discovered (and then named after its folders) or written out by hand (and then misses
the next subpackage); this discovers both trees and gives the second its installed name. The
rest of the configuration, package data included, stays in pyproject.toml.
"""

from __future__ import annotations

from setuptools import find_namespace_packages, setup

TUI = "edge_runner_tui"

setup(
    packages=[
        *find_namespace_packages(include=["edge_runner", "edge_runner.*"]),
        TUI,
        *(f"{TUI}.{name}" for name in find_namespace_packages("tui")),
    ],
    package_dir={TUI: "tui"},
)
