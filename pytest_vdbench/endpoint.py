"""What runtimes and protocol clients share, and nothing else: where a model answers, what it returned.

Protocol-neutral on purpose: a runtime hands back an :class:`Endpoint`, a client reads a
:class:`Generation` from it or raises :class:`AdapterError`; neither side imports the other.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = ["AdapterError", "Endpoint", "Generation"]


@dataclass(frozen=True)
class Endpoint:
    """Where an adapter server answers: a loopback address, or a Unix socket (``network: none``).

    With ``unix_socket`` set, ``host``/``port`` are only labels: requests go through the socket.
    """

    host: str
    port: int
    unix_socket: str | None = None
    #: the uid that must own ``unix_socket`` (the container's user); the client refuses any other
    socket_owner: int | None = None

    @property
    def url(self) -> str:
        if self.unix_socket is not None:
            return f"http+unix://{self.unix_socket}"
        return f"http://{self.host}:{self.port}"



class AdapterError(Exception):
    """The adapter answered with an error status (or not at all, or with something malformed)."""

    def __init__(self, message: str, status: int | None = None, traceback: str | None = None) -> None:
        super().__init__(message + (f"\n--- adapter traceback ---\n{traceback}" if traceback else ""))
        self.status = status
        self.traceback = traceback


@dataclass(frozen=True)
class Generation:
    """One generate call: the output and how long it took.

    ``server_seconds`` is the server's own compute time when its claim is plausible, else the round
    trip (``total_seconds``); ``timing_note`` then says why the claim was not believed.
    """

    output: np.ndarray[Any, Any]
    server_seconds: float
    total_seconds: float
    peak_rss_bytes: int | None
    nbytes: int
    timing_note: str | None = None
