"""The client side of the ``motey`` command: talk to any node's REST API."""
