"""Dependency injection: the one container that knows every class."""
