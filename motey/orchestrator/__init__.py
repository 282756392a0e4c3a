"""The business logic: parse, validate, place, deploy, watch and terminate services."""
