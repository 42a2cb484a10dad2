"""Packaging shim: metadata and dependencies live in setup.cfg.

The JSON Schemas live in the top-level ``crds/`` folder (the design card's place for them) and are
shipped inside the package as ``meshop.crds``, so a plain ``pip install .`` finds them.
"""

from setuptools import find_packages, setup

setup(
    packages=[*find_packages(include=["meshop", "meshop.*"]), "meshop.crds"],
    package_dir={"meshop.crds": "crds"},
    package_data={"meshop": ["py.typed"], "meshop.crds": ["*.yaml"]},
)
