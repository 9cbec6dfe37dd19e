"""The ``edge-runner`` command line. Each command group lives in its own module and imports
the subsystems it needs lazily, so ``edge-runner predict`` never loads the control plane."""
