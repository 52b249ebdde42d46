"""sitecustomize for benchmarks/gpu-simulate.sh: hide installed modules as the GPU machine lacks them.

Each top-level module named in ABLATE_HIDE (comma-separated) is found only on PYTHONPATH, never in
site-packages, so benchmarks/gpu.sh must bring it itself (ablate from the checkout, tomli-w from .whl/).
"""

import importlib.abc
import importlib.machinery
import os
import sys

HIDDEN = {name for name in os.environ.get("ABLATE_HIDE", "").split(",") if name}
ALLOWED = [path for path in os.environ.get("PYTHONPATH", "").split(os.pathsep) if path]


class Hide(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if "." in name or name not in HIDDEN:
            return None
        spec = importlib.machinery.PathFinder.find_spec(name, ALLOWED)
        if spec is None:
            raise ModuleNotFoundError(f"No module named {name!r} (hidden, as on the GPU machine)", name=name)
        return spec


sys.meta_path.insert(0, Hide())
