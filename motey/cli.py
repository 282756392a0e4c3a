"""The ``motey`` command: run a node in the foreground or manage it as a daemon."""

from __future__ import annotations

import argparse
import errno
import os
import signal
import sys
import time
from pathlib import Path
from typing import Any

from motey import __version__, config_example
from motey.client import commands as client_commands
from motey.config import default_config_path, load_config
from motey.errors import ConfigError, MoteyError
from motey.fast_exit import exit_now
from motey.security import cell_cli
from motey.security.credentials import require_credentials
from motey.security.token_cli import add_token_commands, run_token_command

EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_USAGE = 2
EXIT_NOT_RUNNING = 3  # LSB: program is not running
#: ``motey stop --timeout`` default; above the sum of the components' stop waits (tested).
STOP_TIMEOUT = 30.0

DESCRIPTION = """\
Motey: a masterless fog-node orchestration engine. Each node takes service blueprints
over REST (default port 5023), places every image on a node that has the capabilities
it needs, runs it there and keeps its state visible.
"""

EPILOG = """\
commands:
  run       run the node in the foreground (systemd, containers, development)
  start     start the node as a daemon, writing [GENERAL] pid
  stop      stop the daemon and wait until it is gone
  restart   stop, then start the daemon
  status    tell whether the daemon runs (exit 0) or not (exit 3)
  config-example  print the documented default config.ini
  cell      create a secure cell, issue or revoke node credentials (see docs/security.md)
  token     create, list and revoke this node's API tokens

client commands (talk to a node's REST API: --node URL or $MOTEY_ADDR, --token or
$MOTEY_TOKEN, $MOTEY_CACERT for a secure cell; `motey COMMAND --help` has examples):
  deploy, services, service, terminate, nodes, capabilities, logs

The configuration file defaults to $MOTEY_CONFIG, else the repository's config.ini in a
source checkout, else /etc/motey/config.ini;
any key can be overridden by MOTEY_<SECTION>_<KEY> environment variables.
"""


def build_parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "-c",
        "--config",
        metavar="PATH",
        default=argparse.SUPPRESS,
        help="configuration file (default: $MOTEY_CONFIG, else config.ini of a source"
        " checkout, else /etc/motey/config.ini)",
    )
    parser = argparse.ArgumentParser(
        prog="motey",
        description=DESCRIPTION,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        parents=[common],
    )
    parser.add_argument("--version", action="version", version=f"motey {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for name, text in (
        ("run", "run the node in the foreground until SIGTERM/SIGINT"),
        ("start", "start the node as a background daemon"),
        ("stop", "stop the daemon and wait until it has exited"),
        ("restart", "stop the daemon (if running) and start it again"),
        ("status", "report whether the daemon is running"),
    ):
        command = sub.add_parser(name, help=text, description=text, parents=[common])
        if name in ("stop", "restart"):
            command.add_argument(
                "--timeout",
                type=float,
                default=STOP_TIMEOUT,
                help=f"seconds to wait for the daemon to exit (default: {STOP_TIMEOUT:g})",
            )
    client_commands.register(sub)
    config_example.register(sub)
    add_token_commands(sub, common)
    cell_cli.register(sub)
    return parser


def _config_path(args: argparse.Namespace) -> Path:
    explicit = getattr(args, "config", None) or os.environ.get("MOTEY_CONFIG")
    return Path(explicit) if explicit else default_config_path()


def run_node(config: dict[str, Any], console: bool = True) -> int:
    """Build the container, run the core until a signal, shut resources down."""
    from motey.di.app_module import build_container

    container = build_container(config)
    container.config.LOGGER.console.from_value(console)
    core = None
    try:
        container.init_resources()  # opens the databases: a refusal is one line, too
        core = container.core()
        core.run()
    except MoteyError as exc:
        import logbook

        logbook.Logger("motey").critical("node failed to start: {}", exc.message)
        if not console:  # with a console the log line above is the one line that says it
            print(f"motey: error: {exc.message}", file=sys.stderr)
        return EXIT_FAILURE
    finally:
        from motey.di.app_module import shutdown_resources

        shutdown_resources(container, drained=core is None or core.drained)
    return EXIT_OK


def read_pid(pid_file: str) -> int | None:
    """The pid in the pid file if that process is alive, else ``None``."""
    try:
        pid = int(Path(pid_file).read_text(encoding="ascii").strip())
    except (FileNotFoundError, ValueError):
        return None
    try:
        os.kill(pid, 0)
    except OSError as exc:
        if exc.errno == errno.EPERM:
            return pid
        return None
    return pid


def start_daemon(config: dict[str, Any], config_path: Path) -> int:
    from daemonize import Daemonize

    pid_file = config["GENERAL"]["pid"]
    running = read_pid(pid_file)
    if running:
        print(f"motey is already running (pid {running}, pid file {pid_file})", file=sys.stderr)
        return EXIT_FAILURE
    Path(pid_file).parent.mkdir(parents=True, exist_ok=True)
    Path(config["LOGGER"]["log_path"]).mkdir(parents=True, exist_ok=True)
    print(f"starting motey daemon (pid file {pid_file}, config {config_path})")
    sys.stdout.flush()

    def action() -> None:
        # Everything with a socket, a thread or an open file is created here, after the fork.
        code = run_node(config, console=False)
        raise SystemExit(code)

    daemon = Daemonize(
        app=config["GENERAL"]["app_name"],
        pid=pid_file,
        action=action,
        chdir="/",
        auto_close_fds=True,
    )
    daemon.start()  # the parent exits inside; only the daemon returns here
    return EXIT_OK


def stop_daemon(config: dict[str, Any], timeout: float) -> int:
    pid_file = config["GENERAL"]["pid"]
    pid = read_pid(pid_file)
    if pid is None:
        print(f"motey is not running (no live process in {pid_file})")
        Path(pid_file).unlink(missing_ok=True)
        return EXIT_OK
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            break
        time.sleep(0.1)
    else:
        print(f"motey (pid {pid}) did not exit within {timeout:g} s", file=sys.stderr)
        return EXIT_FAILURE
    Path(pid_file).unlink(missing_ok=True)
    print(f"motey stopped (pid {pid})")
    return EXIT_OK


def status_daemon(config: dict[str, Any]) -> int:
    pid_file = config["GENERAL"]["pid"]
    pid = read_pid(pid_file)
    if pid is None:
        print("motey is not running")
        return EXIT_NOT_RUNNING
    web = config["WEBSERVER"]
    scheme = "http" if config["SECURITY"]["mode"] == "open" else "https"
    print(f"motey is running (pid {pid}); REST API at {scheme}://{web['ip']}:{web['port']}/v1")
    return EXIT_OK


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command == "cell":
        return cell_cli.run(args)
    if hasattr(args, "client"):
        return client_commands.run(args)
    if args.command == config_example.COMMAND:
        return config_example.run()
    config_path = _config_path(args)
    try:
        config = load_config(config_path)
        if args.command in ("run", "start", "restart"):
            require_credentials(config)
    except ConfigError as exc:
        print(f"motey: error: {exc.message}", file=sys.stderr)
        return EXIT_USAGE
    if args.command == "token":
        return run_token_command(config, args)
    if args.command == "run":
        return exit_now(run_node(config))  # skips the interpreter's teardown (fast_exit.py)
    if args.command == "start":
        return start_daemon(config, config_path)
    if args.command == "stop":
        return stop_daemon(config, args.timeout)
    if args.command == "restart":
        code = stop_daemon(config, args.timeout)
        return code if code != EXIT_OK else start_daemon(config, config_path)
    return status_daemon(config)


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
