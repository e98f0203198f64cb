"""``python -m pyworkflow``: the pyworkflow command line."""

from ._cli._main import main

if __name__ == "__main__":
    raise SystemExit(main())
