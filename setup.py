"""Packaging beyond pyproject.toml: the top-level folders methods/, kernels/ and dashboard/ are
installed under import names that cannot collide with other distributions (repro_methods,
repro_kernels, repro_dashboard)."""
from setuptools import find_packages, setup

RENAMED = {"repro_methods": "methods", "repro_kernels": "kernels", "repro_dashboard": "dashboard"}

packages = find_packages(include=["repro", "repro.*"])
for name, folder in RENAMED.items():
    packages += [name] + [f"{name}.{sub}" for sub in find_packages(folder)]

setup(packages=packages, package_dir=RENAMED)
