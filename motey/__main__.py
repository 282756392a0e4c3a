"""Allow ``python -m motey`` as an alias of the ``motey`` command."""

from motey.cli import main

if __name__ == "__main__":  # importing the module (e.g. for the API reference) runs nothing
    raise SystemExit(main())
