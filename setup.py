"""Package layout only (metadata lives in pyproject.toml).

The repository keeps ``components/`` and ``pipelines/`` at the top level, one folder per
pipeline step and one for the graphs and recipes, but the wheel installs a single top-level
package: those folders become ``xdetox.components`` and ``xdetox.pipelines``. A plain
``[tool.setuptools.packages.find]`` cannot add a prefix to found packages, hence this file.
"""

from setuptools import find_packages, setup

# repository folder → its package name inside the wheel
MAPPED_FOLDERS = {"components": "xdetox.components", "pipelines": "xdetox.pipelines"}

packages = find_packages(include=["xdetox", "xdetox.*"])
package_dir = {"xdetox": "xdetox"}
for folder, name in MAPPED_FOLDERS.items():
    package_dir[name] = folder
    packages += [name, *(f"{name}.{sub}" for sub in find_packages(folder))]

setup(packages=packages, package_dir=package_dir)
