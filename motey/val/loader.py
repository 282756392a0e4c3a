"""Finding VAL plugins: ``*.yapsy-plugin`` info files and ``motey.val`` entry points.

Yapsy itself cannot be imported on Python 3.12+ (it uses the removed ``imp`` module), so
its info-file format is kept and the module beside each file is loaded with importlib.
"""

from __future__ import annotations

import configparser
import importlib.util
import inspect
import sys
from importlib.metadata import entry_points
from pathlib import Path
from types import ModuleType

import logbook

from motey.val.plugin import VALPlugin

log = logbook.Logger(__name__)

ENTRY_POINT_GROUP = "motey.val"
BUILTIN_PLUGIN_DIR = Path(__file__).resolve().parent / "plugins"


class PluginLoadError(Exception):
    """One plugin could not be loaded; the others still are."""


def _plugin_class(module: ModuleType, origin: str) -> type[VALPlugin]:
    classes = [
        obj
        for _, obj in inspect.getmembers(module, inspect.isclass)
        if issubclass(obj, VALPlugin) and obj is not VALPlugin and obj.__module__ == module.__name__
    ]
    if len(classes) != 1:
        raise PluginLoadError(
            f"{origin}: expected exactly one VALPlugin subclass, found {len(classes)}"
        )
    return classes[0]


def load_info_file(info_path: Path) -> tuple[str, type[VALPlugin]]:
    """Load the plugin that a ``*.yapsy-plugin`` file describes; return (name, class)."""
    parser = configparser.ConfigParser(interpolation=None)
    try:
        parser.read(info_path, encoding="utf-8")
        name = parser.get("Core", "Name").strip()
        module_name = parser.get("Core", "Module").strip()
    except (configparser.Error, UnicodeDecodeError) as exc:
        raise PluginLoadError(f"{info_path}: invalid plugin info file: {exc}") from exc
    module_file = info_path.parent / f"{module_name}.py"
    if not module_file.is_file():
        module_file = info_path.parent / module_name / "__init__.py"
    if not module_file.is_file():
        raise PluginLoadError(f"{info_path}: module {module_name!r} not found beside it")
    if info_path.parent.resolve() == BUILTIN_PLUGIN_DIR:
        qualified = f"motey.val.plugins.{module_name}"
        try:
            module = importlib.import_module(qualified)
        except ImportError as exc:
            raise PluginLoadError(f"{info_path}: cannot import {qualified}: {exc}") from exc
    else:
        qualified = f"motey_val_plugin_{module_name}"
        spec = importlib.util.spec_from_file_location(qualified, module_file)
        if spec is None or spec.loader is None:
            raise PluginLoadError(f"{info_path}: cannot load {module_file}")
        module = importlib.util.module_from_spec(spec)
        sys.modules[qualified] = module
        try:
            spec.loader.exec_module(module)
        except Exception as exc:
            sys.modules.pop(qualified, None)
            raise PluginLoadError(f"{info_path}: importing {module_file} failed: {exc}") from exc
    cls = _plugin_class(module, str(info_path))
    return name, cls


def discover_plugins(extra_dirs: list[str] | None = None) -> dict[str, type[VALPlugin]]:
    """Every loadable plugin by engine name; info files win over entry points.

    A plugin that fails to load is logged and skipped so one broken plugin does not stop
    the node.
    """
    found: dict[str, type[VALPlugin]] = {}
    dirs = [BUILTIN_PLUGIN_DIR] + [Path(d) for d in (extra_dirs or []) if d]
    for folder in dirs:
        if not folder.is_dir():
            log.warning("VAL plugin folder {} does not exist", folder)
            continue
        for info in sorted(folder.glob("*.yapsy-plugin")):
            try:
                name, cls = load_info_file(info)
            except PluginLoadError as exc:
                log.error("skipping VAL plugin: {}", exc)
                continue
            found.setdefault(name, cls)
    for entry in entry_points(group=ENTRY_POINT_GROUP):
        if entry.name in found:
            continue
        try:
            cls = entry.load()
        except Exception as exc:  # a broken third-party package must not stop the node
            log.error("skipping VAL plugin entry point {}: {}", entry.name, exc)
            continue
        if not (inspect.isclass(cls) and issubclass(cls, VALPlugin)):
            log.error("skipping VAL plugin entry point {}: not a VALPlugin subclass", entry.name)
            continue
        found[entry.name] = cls
    return found
