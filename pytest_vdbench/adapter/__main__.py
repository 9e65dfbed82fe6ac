"""``python -m pytest_vdbench.adapter serve module:Class --port 8080``: run an adapter server."""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
from typing import List, Optional


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m pytest_vdbench.adapter")
    sub = parser.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve", help="serve a ModelAdapter over the vdbench REST contract")
    serve.add_argument("entry", help="adapter class as module:Class or path/to/file.py:Class")
    serve.add_argument("--host", default=os.environ.get("VDBENCH_HOST", "127.0.0.1"))
    serve.add_argument("--port", type=int, default=int(os.environ.get("VDBENCH_PORT", "8080")))
    serve.add_argument(
        "--unix-socket",
        default=os.environ.get("VDBENCH_UNIX_SOCKET") or None,
        metavar="PATH",
        help="listen on this Unix socket instead of TCP (the network: none sandbox)",
    )
    serve.add_argument(
        "--options",
        default=os.environ.get("VDBENCH_OPTIONS", "{}"),
        help="JSON object passed to the adapter's constructor (default: $VDBENCH_OPTIONS or {})",
    )
    args = parser.parse_args(argv)
    sys.path.insert(0, os.getcwd())
    try:
        options = json.loads(args.options)
    except ValueError as exc:
        parser.error(f"--options is not valid JSON: {exc}")
    if not isinstance(options, dict):
        parser.error("--options must be a JSON object")

    from pytest_vdbench.adapter.server import make_server, make_unix_server
    from pytest_vdbench.adapter.wire import Server

    server: Server
    if args.unix_socket:
        server = make_unix_server(args.entry, args.unix_socket, options)
        where = f"unix:{args.unix_socket}"
    else:
        tcp = make_server(args.entry, args.host, args.port, options)
        server, where = tcp, f"{args.host}:{tcp.server_address[1]}"
    # SIGTERM (docker stop, runtime stop) ends serve_forever cleanly instead of killing mid-write.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    sys.stderr.write(f"vdbench adapter: serving {args.entry} on {where}\n")
    sys.stderr.flush()
    try:
        server.serve_forever()
    except (KeyboardInterrupt, SystemExit):
        pass
    finally:
        server.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
