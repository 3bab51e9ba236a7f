"""Regular-expression search over a dataset's joined text, with a hard time limit.

Literal patterns run in-process (the stdlib's C literal search cannot backtrack). Everything else runs in a forked
worker process that shares the text with this one: the `regex` package's own `timeout` stops most runaway
patterns, but not all (measured: `(a|aa)+$` on 5,000 a's ran 24 s past a 2 s timeout), and a search inside C
cannot be interrupted from a thread. So the worker is killed when the limit passes and forked afresh next time.
A fork costs milliseconds; a fresh interpreter took 30 s on a loaded machine with a cold disk cache.

The child only runs `regex` and pipe I/O (no locks, no imports), which is what makes forking a process that has
other threads (torch's pool, an HTTP server) safe here.
"""

from __future__ import annotations

import os
import pickle
import re
import signal
import struct
import threading
import weakref
from array import array

import numpy as np

from tools.base import ToolError

TIMEOUT_S = 3.0
_META = set(".^$*+?{}[]\\|()")


def is_literal(pattern: str) -> bool:
    return not (set(pattern) & _META)


def literal_positions(text: str, pattern: str) -> tuple[np.ndarray, np.ndarray]:
    starts = np.fromiter((m.start() for m in re.finditer(re.escape(pattern), text)), dtype=np.int64)
    return starts, starts + len(pattern)


def _read_exact(fd: int, n: int) -> bytes:
    buf = bytearray()
    while len(buf) < n:
        chunk = os.read(fd, n - len(buf))
        if not chunk:
            raise EOFError
        buf += chunk
    return bytes(buf)


def _recv(fd: int):
    return pickle.loads(_read_exact(fd, struct.unpack("<Q", _read_exact(fd, 8))[0]))


def _send(fd: int, obj) -> None:
    b = pickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL)
    view = memoryview(struct.pack("<Q", len(b)) + b)
    while view:
        view = view[os.write(fd, view) :]


def _serve(text: str, inp: int, out: int) -> None:
    import regex  # imported by the parent before the fork: no import machinery runs here

    while True:
        try:
            pattern, flags, timeout = _recv(inp)
        except EOFError:
            return
        try:
            starts, ends = array("q"), array("q")
            for m in regex.finditer(pattern, text, flags=flags, timeout=timeout):
                starts.append(m.start())
                ends.append(m.end())
            _send(out, ("ok", starts.tobytes(), ends.tobytes()))
        except TimeoutError:
            _send(out, ("timeout",))
        except Exception as e:
            _send(out, ("error", f"{type(e).__name__}: {e}"))


def _close_inherited(keep: set[int]) -> None:
    """In a forked child: close every file the parent had open but `keep`, so that the child holds no lock (a run's
    transcript lock) or file of the parent's past the parent's own use of it."""
    for name in os.listdir("/proc/self/fd") if os.path.isdir("/proc/self/fd") else []:
        fd = int(name)
        if fd > 2 and fd not in keep:
            try:
                os.close(fd)
            except OSError:
                pass  # the directory listing's own descriptor, already gone


class Worker:
    """One search process per dataset text; killed after a timeout and forked again on the next search."""

    def __init__(self, text: str):
        import regex  # noqa: F401  (loaded before forking; see _serve)

        self.text = text
        self.state: dict = {"pid": None, "to": None, "frm": None}
        self.lock = threading.Lock()
        weakref.finalize(self, Worker._stop, self.state)

    @staticmethod
    def _stop(state: dict) -> None:
        pid = state.get("pid")
        if pid:
            try:
                os.kill(pid, signal.SIGKILL)
                os.waitpid(pid, 0)
            except (ProcessLookupError, ChildProcessError):
                pass
        for k in ("to", "frm"):
            if state.get(k) is not None:
                os.close(state[k])
        state.update(pid=None, to=None, frm=None)

    def _start(self) -> None:
        to_r, to_w = os.pipe()
        frm_r, frm_w = os.pipe()
        pid = os.fork()
        if pid == 0:  # the child: serve until the parent closes the pipe or kills us
            try:
                _close_inherited(keep={to_r, frm_w})
                _serve(self.text, to_r, frm_w)
            finally:
                os._exit(0)
        os.close(to_r)
        os.close(frm_w)
        self.state.update(pid=pid, to=to_w, frm=frm_r)

    def search(self, pattern: str, flags: int, timeout: float = TIMEOUT_S) -> tuple[np.ndarray, np.ndarray]:
        with self.lock:
            if self.state["pid"] is None:
                self._start()
            try:
                _send(self.state["to"], (pattern, flags, timeout))
            except OSError:  # the worker died (killed from outside): start over once
                Worker._stop(self.state)
                self._start()
                _send(self.state["to"], (pattern, flags, timeout))
            reply = self._wait(timeout + 0.5)  # the worker's own timeout usually answers first
        if reply is None:
            raise ToolError(timeout_message(pattern, timeout))
        kind, *rest = reply
        if kind == "timeout":
            raise ToolError(timeout_message(pattern, timeout))
        if kind == "error":
            raise ToolError(f"argument 'pattern': {rest[0]}")
        return np.frombuffer(rest[0], dtype=np.int64), np.frombuffer(rest[1], dtype=np.int64)

    def _wait(self, seconds: float):
        reply: list = []

        def read() -> None:
            try:
                reply.append(_recv(self.state["frm"]))
            except (EOFError, OSError, pickle.UnpicklingError):
                pass  # killed mid-reply: the caller reports the timeout

        reader = threading.Thread(target=read, daemon=True)
        reader.start()
        reader.join(seconds)
        if reader.is_alive() or not reply:
            if self.state["pid"]:
                try:
                    os.kill(self.state["pid"], signal.SIGKILL)  # EOF on the pipe ends the reader
                except ProcessLookupError:
                    pass
            reader.join()
            Worker._stop(self.state)
            return None
        return reply[0]


def timeout_message(pattern: str, timeout: float) -> str:
    return (f"argument 'pattern': {pattern!r} did not finish within {timeout:g} s and was stopped. Patterns with "
            f"nested or overlapping repetition such as (a+)+ or (a|aa)+ can take exponential time; use a literal "
            f"or a simpler pattern (e.g. a+ instead of (a+)+), or anchor it with nearby literal text.")
