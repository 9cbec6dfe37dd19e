"""FAKE ``pynvml`` for child processes: ``PYTHONPATH=tests/fakes/nvml_shim FAKE_NVML=one_gpu``.

Loads the recording named by ``$FAKE_NVML`` from ``tests/fakes/nvml/`` (see
``tests/fakes/nvml.py``) and answers as the real module would.
"""

import json
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[3]))

from tests.fakes.nvml import FakeNvml  # noqa: E402 - the path above makes it importable

_fake = FakeNvml.load(os.environ.get("FAKE_NVML", "one_gpu"))
NVMLError = _fake.NVMLError
NVML_TEMPERATURE_GPU = 0
for _name in dir(_fake):
    if _name.startswith("nvml"):
        globals()[_name] = getattr(_fake, _name)
del json
