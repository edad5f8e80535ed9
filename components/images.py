"""The container images the components name. One constant per image, tagged with the version.

On a cluster the image supplies the code (``install_kfp_package=False``); KFP's local runner
ignores ``base_image`` and runs the function in this interpreter.
"""

from __future__ import annotations

from xdetox import __version__

REGISTRY = "ghcr.io/xdetox"
BASE_IMAGE = f"{REGISTRY}/xdetox:{__version__}"
