"""Allow ``python -m motey`` as an alias of the ``motey`` command."""

from motey.cli import main

raise SystemExit(main())
