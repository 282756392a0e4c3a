"""Reading and validating ``config.ini``.

The file keeps the original Motey's sections and keys; new keys only add to them. Every
value can be overridden by an environment variable ``MOTEY_<SECTION>_<KEY>`` (what systemd
units and containers use). Relative paths are resolved against the folder of the config
file, never against the working directory, so a daemon that chdirs to ``/`` still finds
its files.
"""

from __future__ import annotations

import configparser
import ipaddress
import os
import socket
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from motey.errors import ConfigError
from motey.packaged import webclient_dir

#: Every known key with its default. A key missing from the file takes this value.
DEFAULTS: dict[str, dict[str, str]] = {
    "GENERAL": {"app_name": "Motey", "pid": "var/run/motey.pid"},
    "LOGGER": {
        "name": "Motey",
        "log_path": "var/log",
        "file_name": "application.log",
        "level": "INFO",
    },
    "WEBSERVER": {
        "ip": "",
        "port": "5023",
        "cors_origins": "",
        "threads": "8",
        "webclient_path": "",
        "max_streams": "4",
        "follow_limit": "3600",
    },
    "MQTT": {
        "ip": "",
        "port": "1883",
        "keepalive": "10",
        "username": "",
        "password": "",
        "client_id": "",
        "reconnect_max_delay": "30",
        "presence_interval": "10",
    },
    "DATABASE": {"path": "var/databases"},
    "ZEROMQ": {
        "capability_engine_ipc_path": "/tmp/motey/capability_engine.ipc",
        "capability_engine_ipc_group": "",
        "capabilities_replier": "5091",
        "deploy_image_replier": "5092",
        "image_status_replier": "5093",
        "image_terminate_replier": "5094",
        "image_logs_replier": "5095",
        "services_replier": "5096",
        "image_claims_replier": "5097",
        "request_timeout": "3",
        "action_timeout": "60",
    },
    "DOCKER": {
        "url": "unix://var/run/docker.sock",
        "pull_missing": "true",
        "timeout": "60",
        "stop_timeout": "10",
    },
    "VAL": {"plugin_path": ""},
    "NODE": {
        "ip": "",
        "name": "",
        "capabilities": "",
        "device_rules": "",
        "device_poll_interval": "1",
        "detect_facts": "true",
    },
    "ORCHESTRATOR": {
        "watch_interval": "2",
        "workers": "4",
        "placement_timeout": "3",
        "placement_deadline": "",
        "peer_max_failures": "3",
        "peer_grace": "30",
        "reschedule_after": "30",
        "stop_after_disconnect": "15",
    },
    "SECURITY": {
        "mode": "secure",
        "credentials": "",
        "failed_token_limit": "10",
        "failed_token_window": "60",
    },
    "POLICY": {
        "allow_privileged": "false",
        "allow_host_network": "false",
        "allow_host_pid": "false",
        "allow_host_ipc": "false",
        "allowed_cap_add": "",
        "allow_devices": "false",
        "allowed_bind_paths": "",
        "allow_docker_socket": "false",
        "allow_root_user": "false",
        "allow_restart_policy": "false",
        "allowed_images": "*",
        "max_shm_size": "256m",
    },
}

#: The values ``[SECURITY] mode`` takes: ``secure`` (default) or the original's ``open``.
SECURITY_MODES = ("secure", "open")

_PATH_KEYS = {
    ("GENERAL", "pid"),
    ("LOGGER", "log_path"),
    ("DATABASE", "path"),
    ("SECURITY", "credentials"),
}
_INT_KEYS = {
    ("SECURITY", "failed_token_limit"),
    ("WEBSERVER", "port"),
    ("WEBSERVER", "threads"),
    ("MQTT", "port"),
    ("MQTT", "keepalive"),
    ("MQTT", "reconnect_max_delay"),
    ("ZEROMQ", "capabilities_replier"),
    ("ZEROMQ", "deploy_image_replier"),
    ("ZEROMQ", "image_status_replier"),
    ("ZEROMQ", "image_terminate_replier"),
    ("ZEROMQ", "image_logs_replier"),
    ("ZEROMQ", "services_replier"),
    ("WEBSERVER", "max_streams"),
    ("ZEROMQ", "image_claims_replier"),
    ("DOCKER", "timeout"),
    ("DOCKER", "stop_timeout"),
    ("ORCHESTRATOR", "workers"),
    ("ORCHESTRATOR", "peer_max_failures"),
}
_FLOAT_KEYS = {
    ("SECURITY", "failed_token_window"),
    ("NODE", "device_poll_interval"),
    ("ZEROMQ", "request_timeout"),
    ("ZEROMQ", "action_timeout"),
    ("WEBSERVER", "follow_limit"),
    ("MQTT", "presence_interval"),
    ("ORCHESTRATOR", "watch_interval"),
    ("ORCHESTRATOR", "placement_timeout"),
    ("ORCHESTRATOR", "peer_grace"),
    ("ORCHESTRATOR", "reschedule_after"),
    ("ORCHESTRATOR", "stop_after_disconnect"),
}
#: Numbers that may be left empty, meaning "none" (``None``).
_OPTIONAL_FLOAT_KEYS = {("ORCHESTRATOR", "placement_deadline")}
_BOOL_KEYS = {("DOCKER", "pull_missing"), ("NODE", "detect_facts")} | {
    ("POLICY", k) for k in DEFAULTS["POLICY"] if k.startswith("allow_")
}
_PORT_KEYS = {
    ("WEBSERVER", "port"),
    ("MQTT", "port"),
    ("ZEROMQ", "capabilities_replier"),
    ("ZEROMQ", "deploy_image_replier"),
    ("ZEROMQ", "image_status_replier"),
    ("ZEROMQ", "image_terminate_replier"),
    ("ZEROMQ", "image_logs_replier"),
    ("ZEROMQ", "services_replier"),
    ("ZEROMQ", "image_claims_replier"),
}


#: The configuration an installed node reads when none is given (systemd unit, image).
SYSTEM_CONFIG_PATH = Path("/etc/motey/config.ini")


def default_config_path() -> Path:
    """The config file used when none is given.

    In a source checkout that is the repository's ``config.ini``; an installed package has
    none beside it (its bundled copy would keep data inside site-packages), so it reads
    the system-wide :data:`SYSTEM_CONFIG_PATH`.
    """
    checkout = Path(__file__).resolve().parent.parent / "config.ini"
    return checkout if checkout.is_file() else SYSTEM_CONFIG_PATH


def detect_default_ip() -> str:
    """The address of the default route, found without sending a packet.

    Connecting a UDP socket only picks a route; nothing goes on the wire. With no route
    at all the node falls back to loopback and stays a single-machine cluster.
    """
    probe = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        probe.connect(("192.0.2.1", 9))  # TEST-NET-1: never routed, never sent to
        return str(probe.getsockname()[0])
    except OSError:
        return "127.0.0.1"
    finally:
        probe.close()


def load_config(
    path: str | os.PathLike[str] | None = None, environ: Mapping[str, str] | None = None
) -> dict[str, dict[str, Any]]:
    """Read, override from the environment, type-check and resolve a config file.

    Returns a nested dict (section → key → typed value) meant for
    ``providers.Configuration.from_dict``. Raises :class:`ConfigError` naming the file,
    the section and the key for anything wrong.
    """
    config_path = Path(path) if path is not None else default_config_path()
    environ = os.environ if environ is None else environ
    if not config_path.is_file():
        raise ConfigError(
            f"config file not found: {config_path}"
            f" (write the documented default with `motey config-example > {config_path}`)"
        )
    parser = configparser.ConfigParser(interpolation=None)
    try:
        with config_path.open(encoding="utf-8") as handle:
            parser.read_file(handle)
    except (configparser.Error, UnicodeDecodeError, OSError) as exc:
        raise ConfigError(f"cannot parse config file {config_path}: {exc}") from exc

    base_dir = config_path.resolve().parent
    raw: dict[str, dict[str, str]] = {s: dict(keys) for s, keys in DEFAULTS.items()}
    for section in parser.sections():
        target = raw.setdefault(section.upper(), {})
        for key, value in parser.items(section):
            target[key.lower()] = value
    for name, value in environ.items():
        if not name.startswith("MOTEY_"):
            continue
        for section, keys in raw.items():
            prefix = f"MOTEY_{section}_"
            if name.startswith(prefix) and name[len(prefix) :].lower() in keys:
                keys[name[len(prefix) :].lower()] = value

    result: dict[str, dict[str, Any]] = {}
    for section, keys in raw.items():
        result[section] = {}
        for key, value in keys.items():
            result[section][key] = _convert(section, key, value.strip(), base_dir, config_path)
    _finish(result, base_dir, config_path)
    result["GENERAL"]["config_path"] = str(config_path.resolve())
    return result


def _convert(section: str, key: str, value: str, base_dir: Path, config_path: Path) -> Any:
    where = f"{config_path}: [{section}] {key}"
    if (section, key) in _INT_KEYS:
        try:
            number = int(value)
        except ValueError:
            raise ConfigError(f"{where} must be a whole number, got {value!r}") from None
        if (section, key) in _PORT_KEYS and not 0 < number < 65536:
            raise ConfigError(f"{where} must be a port between 1 and 65535, got {number}")
        if (section, key) not in _PORT_KEYS and number < 0:
            raise ConfigError(f"{where} must not be negative, got {number}")
        return number
    if (section, key) in _OPTIONAL_FLOAT_KEYS and value.lower() in ("", "none"):
        return None
    if (section, key) in _FLOAT_KEYS | _OPTIONAL_FLOAT_KEYS:
        try:
            number_f = float(value)
        except ValueError:
            raise ConfigError(f"{where} must be a number, got {value!r}") from None
        if number_f <= 0:
            raise ConfigError(f"{where} must be greater than 0, got {value}")
        return number_f
    if (section, key) in _BOOL_KEYS:
        lowered = value.lower()
        if lowered in {"1", "yes", "true", "on"}:
            return True
        if lowered in {"0", "no", "false", "off"}:
            return False
        raise ConfigError(f"{where} must be true or false, got {value!r}")
    if (section, key) in _PATH_KEYS and value:
        candidate = Path(value).expanduser()
        return str(candidate if candidate.is_absolute() else (base_dir / candidate).resolve())
    return value


def _finish(result: dict[str, dict[str, Any]], base_dir: Path, config_path: Path) -> None:
    """Fill derived defaults and check values that depend on one another."""
    result["LOGGER"].setdefault("console", True)
    node = result["NODE"]
    ip = node["ip"] or detect_default_ip()
    try:
        ipaddress.IPv4Address(ip)
    except ValueError:
        raise ConfigError(f"{config_path}: [NODE] ip must be an IPv4 address, got {ip!r}") from None
    node["ip"] = ip
    node["name"] = node["name"] or socket.gethostname()
    node["capabilities"] = [c.strip() for c in node["capabilities"].split(",") if c.strip()]
    web = result["WEBSERVER"]
    web["ip"] = web["ip"] or ip
    web["cors_origins"] = [o.strip() for o in web["cors_origins"].split(",") if o.strip()]
    client = web["webclient_path"]
    if client:
        candidate = Path(client).expanduser()
        web["webclient_path"] = str(candidate if candidate.is_absolute() else base_dir / candidate)
    else:
        web["webclient_path"] = str(webclient_dir())
    ipc = result["ZEROMQ"]["capability_engine_ipc_path"]
    if ipc.startswith("ipc://"):
        ipc = ipc[len("ipc://") :]
    result["ZEROMQ"]["capability_engine_ipc_path"] = ipc
    ports = [result["ZEROMQ"][k] for k in DEFAULTS["ZEROMQ"] if k.endswith("_replier")]
    if len(set(ports)) != len(ports):
        raise ConfigError(f"{config_path}: [ZEROMQ] replier ports must all differ, got {ports}")
    security = result["SECURITY"]
    if security["failed_token_limit"] < 1:
        raise ConfigError(f"{config_path}: [SECURITY] failed_token_limit must be at least 1")
    security["mode"] = security["mode"].lower()
    if security["mode"] not in SECURITY_MODES:
        raise ConfigError(
            f"{config_path}: [SECURITY] mode must be one of {', '.join(SECURITY_MODES)},"
            f" got {security['mode']!r}"
        )
    orchestrator = result["ORCHESTRATOR"]
    if orchestrator["stop_after_disconnect"] >= orchestrator["reschedule_after"]:
        raise ConfigError(
            f"{config_path}: [ORCHESTRATOR] stop_after_disconnect "
            f"({orchestrator['stop_after_disconnect']:g} s) must be below reschedule_after "
            f"({orchestrator['reschedule_after']:g} s), or an on_disconnect: stop image could "
            "run twice"
        )
    mqtt = result["MQTT"]
    mqtt["client_id"] = mqtt["client_id"] or ""
    if mqtt["ip"] and mqtt["keepalive"] < 1:
        raise ConfigError(f"{config_path}: [MQTT] keepalive must be at least 1 second")
