"""``--vdbench-report DIR`` (a space, not ``=``) read exactly like ``--vdbench-report=DIR``.

pytest decides the rootdir and the ini file from the command line's positional arguments
*before* it loads plugins from entry points. At that moment ``--vdbench-report`` is an unknown
flag, so argparse takes ``DIR`` for a path to collect: an existing DIR moves the rootdir (every
test id changes, the project's ini file and its ``addopts`` are lost). The value is put back in
its place by the final parse, but the rootdir stays. No public pytest API re-decides it, so
``pytest_load_initial_conftests`` (the first hook an entry-point plugin sees) decides the setup
again with every option known and, when the answer differs, installs it the way
``Config.parse`` does. The pytest internals this needs are named in ``_PYTEST_INTERNALS``; if
a pytest release renames them, the run stops with a usage error that names the ``=`` form.

The same decision leaves out manifests named from outside the invocation folder
(``pytest --vdbench /elsewhere/x.yaml::x::test_health``, the id a suite outside the rootdir
prints): pytest would move the rootdir to ``/elsewhere`` and drop the project's ini file, so
the rerun would no longer be the run the id was copied from.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

__all__ = ["resettle_setup", "spaced_vdbench_values"]

_PYTEST_INTERNALS = ("_rootpath", "_inipath", "_inicfg", "_inicache", "_ignored_config_files")


def spaced_vdbench_values(parser: pytest.Parser, args: Sequence[str]) -> list[str]:
    """Values given to a value-taking ``--vdbench-*`` option as the next argument (``--opt VALUE``)."""
    flags = _value_flags(parser)
    return [args[i + 1] for i, arg in enumerate(args[:-1]) if arg in flags]


def _value_flags(parser: pytest.Parser) -> set[str]:
    group = parser.getgroup("vdbench")
    flags: set[str] = set()
    for option in group.options:
        if option.attrs().get("action") in ("store_true", "store_false", "count"):
            continue
        flags.update(name for name in option.names() if name.startswith("--vdbench"))
    return flags


def resettle_setup(config: pytest.Config, parser: pytest.Parser, args: list[str]) -> None:
    """Decide rootdir and ini file again now that the vdbench options are known (see the module doc)."""
    namespace = config.known_args_namespace  # re-parsed by pytest after the plugins loaded
    here = config.invocation_params.dir
    outside = [a for a in namespace.file_or_dir if namespace.vdbench and _manifest_outside(str(a), here)]
    if not spaced_vdbench_values(parser, args) and not outside:
        return
    from _pytest.config.findpaths import determine_setup

    rootpath, inipath, inicfg, ignored = determine_setup(
        inifile=namespace.inifilename,
        override_ini=namespace.override_ini,
        args=[a for a in namespace.file_or_dir if a not in outside],
        rootdir_cmd_arg=namespace.rootdir or None,
        invocation_dir=config.invocation_params.dir,
    )
    if (rootpath, inipath) == (config.rootpath, config.inipath):
        return
    if not all(hasattr(config, name) for name in _PYTEST_INTERNALS):
        raise pytest.UsageError(
            f"--vdbench-*: an option value given after a space ({' '.join(spaced_vdbench_values(parser, args))}) "
            "moved pytest's rootdir and this pytest release cannot be corrected; write --vdbench-OPTION=VALUE"
        )
    old_addopts = _ini_addopts(config)
    old_confcutdir = str(config.inipath.parent if config.inipath is not None else config.rootpath)
    state: dict[str, Any] = vars(config)
    state.update(_rootpath=rootpath, _inipath=inipath, _inicfg=inicfg, _ignored_config_files=ignored, _inicache={})
    parser.extra_info["rootdir"] = str(rootpath)
    parser.extra_info["inifile"] = str(inipath)
    if namespace.confcutdir == old_confcutdir:  # derived from the wrong setup, not given by the user
        namespace.confcutdir = str(inipath.parent if inipath is not None else rootpath)
    _swap_addopts(config, parser, args, old_addopts)


def _manifest_outside(arg: str, here: Path) -> bool:
    path = Path(here, arg.split("::")[0])
    return path.suffix in (".yaml", ".yml") and not path.resolve().is_relative_to(here.resolve())


def _ini_addopts(config: pytest.Config) -> list[str]:
    value = config.getini("addopts")
    return [str(v) for v in value] if isinstance(value, list) else []


def _swap_addopts(config: pytest.Config, parser: pytest.Parser, args: list[str], old: list[str]) -> None:
    """Replace the wrong ini file's ``addopts`` (already in ``args``) by the right one's."""
    new = _ini_addopts(config)
    if old == new:
        return
    if old and args[: len(old)] == old:
        del args[: len(old)]
    args[:0] = new
    config.pluginmanager.consider_preparse(new, exclude_only=False)  # -p NAME in the ini's addopts
    parser.parse_known_args(args, namespace=config.known_args_namespace)
