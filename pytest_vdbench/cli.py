"""The ``vdbench`` command: ``vdbench images bootstrap``, ``vdbench images list`` and friends."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from contextlib import closing
from pathlib import Path

from docker import DockerClient

from pytest_vdbench.bases import BASE_LABEL, BASES, ensure_base
from pytest_vdbench.images import KIND_LABEL, MODEL_LABEL, DockerUnavailable, ImageBuildError, connect_docker

__all__ = ["build_parser", "main"]

Command = Callable[[argparse.Namespace], int]


class CliError(Exception):
    """A failure to report as one line on stderr with exit status 1 (no traceback)."""


def _client() -> DockerClient:
    try:
        return connect_docker()
    except DockerUnavailable as exc:
        raise CliError(str(exc)) from None


def cmd_images_bootstrap(args: argparse.Namespace) -> int:
    """Build the vdbench base images (all, or those named with --base)."""
    names: list[str] = args.base or list(BASES)
    unknown = [n for n in names if n not in BASES]
    if unknown:
        raise CliError(f"unknown base {', '.join(map(repr, unknown))}; known bases: {', '.join(BASES)}")
    stream = print if args.verbose else None
    with closing(_client()) as client:
        for name in names:
            result = ensure_base(
                client,
                name,
                cache_dir=args.cache_dir,
                lock_dir=args.lock_dir,
                force=args.force,
                stream=stream,
            )
            detail = ", ".join(f"{k} {v:.1f}s" for k, v in result.steps.items())
            state = f"built in {result.seconds:.1f}s" if result.built else "up to date"
            print(f"{result.tag:<32} {state}{f' ({detail})' if detail else ''}  {result.image_id[:19]}", flush=True)
    return 0


def cmd_images_list(args: argparse.Namespace) -> int:
    """List the images vdbench made (bases and models) with their size."""
    with closing(_client()) as client:
        images = client.images.list(filters={"label": KIND_LABEL})
    rows = []
    hidden = 0
    for image in images:
        if not image.tags:  # build stages and superseded builds: `docker image prune` removes them
            hidden += 1
            continue
        labels = image.labels
        kind = labels.get(KIND_LABEL, "?")
        what = labels.get(MODEL_LABEL) or labels.get(BASE_LABEL) or ""
        for tag in image.tags:
            rows.append((kind, tag, what, image.short_id.removeprefix("sha256:"), int(image.attrs.get("Size", 0))))
    if not rows:
        print("no vdbench images; build the bases with `vdbench images bootstrap`")
        return 0
    rows.sort()
    width = max(len(r[1]) for r in rows)
    print(f"{'KIND':<6} {'TAG':<{width}} {'SIZE':>9}  {'ID':<12} NAME")
    for kind, tag, what, short, size in rows:
        print(f"{kind:<6} {tag:<{width}} {size / 1e6:>7.0f}MB  {short:<12} {what}")
    if hidden:
        print(f"({hidden} untagged vdbench image(s) not shown; `docker image prune` removes them)")
    return 0


def _add_images(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    images = sub.add_parser("images", help="build and inspect vdbench images")
    images_sub = images.add_subparsers(dest="images_command", metavar="SUBCOMMAND", required=True)

    boot = images_sub.add_parser("bootstrap", help=cmd_images_bootstrap.__doc__)
    boot.add_argument(
        "--base",
        action="append",
        metavar="NAME",
        help="base to build (repeatable). Default: all of bookworm, bullseye, torch-cpu",
    )
    boot.add_argument("--force", action="store_true", help="rebuild even when the recipe label matches")
    boot.add_argument("--cache-dir", type=Path, metavar="DIR", help="rootfs cache. Default: ~/.cache/vdbench")
    boot.add_argument("--lock-dir", type=Path, metavar="DIR", help="build locks. Default: $TMPDIR/vdbench-locks")
    boot.add_argument("-v", "--verbose", action="store_true", help="print the build logs as they come")
    boot.set_defaults(func=cmd_images_bootstrap)

    lst = images_sub.add_parser("list", help=cmd_images_list.__doc__)
    lst.set_defaults(func=cmd_images_list)


def cmd_clean(args: argparse.Namespace) -> int:
    """Remove every container pytest-vdbench started (after a hard kill; normal runs clean up)."""
    from pytest_vdbench.runtime.docker import LABEL_RUN, sweep

    with closing(_client()) as client:
        removed = sweep(client, {LABEL_RUN: args.run or ""})
    print(f"removed {removed} vdbench container(s)")
    return 0


def _add_clean(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    clean = sub.add_parser("clean", help=cmd_clean.__doc__)
    clean.add_argument("--run", metavar="ID", help="only the containers of this run id (label org.vdbench.run)")
    clean.set_defaults(func=cmd_clean)


#: One function per top-level subcommand, each adding its parser; a new command adds one entry.
SUBCOMMANDS: list[Callable[[argparse._SubParsersAction[argparse.ArgumentParser]], None]] = [_add_images, _add_clean]


def build_parser() -> argparse.ArgumentParser:
    """The ``vdbench`` argument parser with every registered subcommand."""
    parser = argparse.ArgumentParser(prog="vdbench", description="pytest-vdbench helper commands")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for add in SUBCOMMANDS:
        add(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``vdbench`` console script."""
    args = build_parser().parse_args(argv)
    func: Command = args.func
    try:
        return func(args)
    except CliError as exc:
        print(f"vdbench: error: {exc}", file=sys.stderr)
        return 1
    except ImageBuildError as exc:  # carries the log tail and the log path
        print(f"vdbench: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
