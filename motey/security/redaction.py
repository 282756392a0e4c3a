"""What a viewer may not read: the values of a service's environment variables.

Environment variables are where images get their passwords, API keys and connection
strings. Which of them are secret cannot be told from the name, so a ``viewer`` sees
every variable's name and ``"***"`` for every value; operators and admins, who could
read them by deploying an image anyway, see the values.
"""

from __future__ import annotations

from typing import Any

#: What a viewer sees in place of an environment value.
MASK = "***"

#: The roles that see environment values in plain.
SEES_SECRETS = frozenset({"operator", "admin"})


def mask_environment(environment: Any) -> Any:
    """The environment with every value masked, in the shape it came in.

    Docker takes a mapping (``{"KEY": "value"}``) or a list (``["KEY=value"]``); a
    ``KEY`` without ``=`` in the list form has no value to hide.
    """
    if isinstance(environment, dict):
        return {key: MASK for key in environment}
    if isinstance(environment, list):
        masked: list[Any] = []
        for entry in environment:
            if isinstance(entry, str) and "=" in entry:
                masked.append(entry.split("=", 1)[0] + "=" + MASK)
            elif isinstance(entry, str):
                masked.append(entry)
            else:
                masked.append(MASK)
        return masked
    return MASK if environment is not None else None


def redact_service(body: dict[str, Any], role: str | None) -> dict[str, Any]:
    """A service's JSON as ``role`` may see it (``None``: no access control, as is)."""
    if role is None or role in SEES_SECRETS:
        return body
    images = []
    for image in body.get("images") or []:
        parameters = image.get("parameters")
        if isinstance(parameters, dict) and "environment" in parameters:
            image = {
                **image,
                "parameters": {
                    **parameters,
                    "environment": mask_environment(parameters["environment"]),
                },
            }
        images.append(image)
    return {**body, "images": images}
