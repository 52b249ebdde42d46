"""The packages: ``ablate*``, plus the top-level ``recipes/`` folder shipped as ``ablate/recipes/``.

``recipes/`` stays the one copy in git; setuptools maps it into the package as package
data (``package_dir`` + ``package_data``), which ``pyproject.toml`` cannot express next to
automatic package discovery. Everything else is configured in ``pyproject.toml``.
"""

from setuptools import find_packages, setup

setup(
    packages=[*find_packages(include=["ablate*"]), "ablate.recipes"],
    package_dir={"ablate.recipes": "recipes"},
    package_data={"ablate.recipes": ["*.toml"]},
)
