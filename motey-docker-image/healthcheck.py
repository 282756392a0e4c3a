"""Container health check: the node's REST API answers and the node is not shutting down.

Reads the same configuration as the node (file plus MOTEY_* overrides) to find the
address the API listens on; exits 0 when ``GET /v1/node`` answers 200 with a lifecycle
other than DECOMMISSION, else 1.
"""

from __future__ import annotations

import json
import os
import ssl
import sys
import urllib.error
import urllib.request
from pathlib import Path

from motey.config import load_config


def main() -> int:
    """Ask the local node for its lifecycle phase."""
    config = load_config(os.environ.get("MOTEY_CONFIG", "/etc/motey/config.ini"))
    web = config["WEBSERVER"]
    ip = "127.0.0.1" if web["ip"] == "0.0.0.0" else web["ip"]
    scheme, context = "http", None
    if config["SECURITY"]["mode"] != "open":
        # HTTPS with the cell's CA; the address asked may be 127.0.0.1, not in the SANs.
        scheme = "https"
        context = ssl.create_default_context(
            cafile=str(Path(config["SECURITY"]["credentials"]) / "ca.crt")
        )
        context.check_hostname = False
    try:
        with urllib.request.urlopen(
            f"{scheme}://{ip}:{web['port']}/v1/node", timeout=4, context=context
        ) as r:
            lifecycle = json.load(r).get("lifecycle")
    except urllib.error.HTTPError as exc:
        if exc.code == 401:  # a secure node answers, but shows its phase to token holders only
            print("answers (secure node: lifecycle needs a token)")
            return 0
        print(f"unhealthy: {exc}")
        return 1
    except (OSError, ValueError) as exc:
        print(f"unhealthy: {exc}")
        return 1
    print(f"lifecycle {lifecycle}")
    return 0 if lifecycle not in (None, "DECOMMISSION") else 1


if __name__ == "__main__":
    sys.exit(main())
