"""``python -m xdetox``: the same command line as the ``xdetox`` script."""

from xdetox.cli.main import main

if __name__ == "__main__":
    raise SystemExit(main())
