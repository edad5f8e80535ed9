"""xdetox: shared core of the detox pipelines (errors, files, config, toy assets)."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("xdetox")
except PackageNotFoundError:  # running from a source tree that was not installed
    __version__ = "0.0.0+local"
