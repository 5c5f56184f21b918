"""``orchestrion gateway --workers N``: N gateway processes on one port (SO_REUSEPORT).

One gateway process spends its CPU in Python on one core; more cores need more
processes. The parent (:class:`Supervisor`) serves nothing: it starts N workers, each of
which binds ``host:port`` itself with ``SO_REUSEPORT`` (:func:`listening_socket`), so the
kernel spreads new connections over their listening sockets, with no socket shared
between processes and no accept lock.

Each worker is the same command run again (``python -m orchestrion gateway ...``) with
two hidden options naming its supervisor and the pipe it reports readiness on:
re-executing keeps a worker exactly the process ``--workers 1`` runs (its own imports,
settings, config checks, event loop; nothing inherited by ``fork`` from a parent that
imported half the platform), and it works the same from the entry point, ``python -m``
and tests. ``multiprocessing`` would have to pickle the app's inputs and would hide the
worker's command line from ``ps``.

Supervision:

- a worker is *ready* once uvicorn has run the app's start-up and listens; it writes one
  byte on its pipe then;
- SIGTERM or SIGINT to the parent sends SIGTERM to every worker (each drains its
  requests for ``shutdown_grace_seconds``); one still running ``_STOP_MARGIN_SECONDS``
  later is killed;
- a worker that exits while the parent is not stopping is started again, with a log
  line; one that exits with code 2 (its settings, config or port are wrong: trying again
  cannot help) stops all, and so do ``_START_FAILURES`` failures in a row of one worker
  before it was ready; the parent then exits non-zero;
- a worker whose parent dies gets SIGTERM from the kernel (``PR_SET_PDEATHSIG``), so
  killing the parent with SIGKILL leaves no worker behind.
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import os
import select
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from types import FrameType
from typing import Any

logger = logging.getLogger("orchestrion.gateway.workers")

#: Exit code of a worker whose start cannot succeed by trying again (typer's usage code).
FATAL_EXIT = 2
#: Failures in a row of one worker before it was ready, after which the parent gives up.
_START_FAILURES = 3
#: Beyond the grace period, what a worker gets to close its parts before it is killed.
_STOP_MARGIN_SECONDS = 15.0
_PR_SET_PDEATHSIG = 1


def listening_socket(host: str, port: int, *, reuse_port: bool = True) -> socket.socket:
    """A TCP socket bound to ``host:port`` (``SO_REUSEPORT`` unless ``reuse_port`` is
    false), not yet listening; ``OSError`` when the address cannot be had."""
    family, kind, proto, _, address = socket.getaddrinfo(
        host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
    )[0]
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if reuse_port:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind(address)
    except OSError:
        sock.close()
        raise
    return sock


def port_is_free(host: str, port: int) -> OSError | None:
    """Why nobody may listen on ``host:port`` right now (None: it is free).

    Bound without ``SO_REUSEPORT``, so that another process's listening socket on the
    port is found even if it set the option: the workers would share its port with it.
    """
    try:
        listening_socket(host, port, reuse_port=False).close()
    except OSError as exc:
        return exc
    return None


def die_with_parent(parent: int) -> None:
    """SIGTERM to this process when ``parent`` exits (Linux); exit now if it is gone."""
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
    if os.getppid() != parent:
        sys.exit(f"gateway worker: its supervisor (pid {parent}) is gone")


def notify_ready(fd: int) -> None:
    """Tell the supervisor this worker serves (one byte on its pipe)."""
    with contextlib.suppress(OSError):
        os.write(fd, b"1")
        os.close(fd)


@dataclass
class _Worker:
    slot: int
    process: subprocess.Popen[bytes] | None = None
    ready_pipe: int | None = None
    ready: bool = False
    failures: int = 0  # in a row, before being ready
    restart_at: float = 0.0


class Supervisor:
    """Runs ``workers`` copies of ``command`` (the worker's options appended) until stopped.

    :meth:`run` answers the parent's exit code: 0 after a stop by signal, 2 when a
    worker's start is wrong (it said so itself), 1 when workers keep failing at start.
    """

    def __init__(self, command: list[str], *, workers: int, grace_seconds: float) -> None:
        self.command = command
        self.workers = [_Worker(slot) for slot in range(1, workers + 1)]
        self.stop_after = grace_seconds + _STOP_MARGIN_SECONDS
        self.stopping = False
        self.exit_code = 0

    # --- the loop -------------------------------------------------------------------------

    def run(self) -> int:
        """Start every worker, keep them running, stop them all on SIGTERM or SIGINT."""
        previous = {
            sig: signal.signal(sig, self._on_signal) for sig in (signal.SIGTERM, signal.SIGINT)
        }
        try:
            for worker in self.workers:
                self._start(worker)
            while not self.stopping:
                self._wait_for_news(timeout=0.5)
                self._reap()
                self._restart_due()
        finally:
            self._stop_all()
            for sig, handler in previous.items():
                signal.signal(sig, handler)
        return self.exit_code

    def _on_signal(self, sig: int, _: FrameType | None) -> None:
        if not self.stopping:
            logger.info("%s: stopping %d workers", signal.Signals(sig).name, len(self.workers))
        self.stopping = True

    def _start(self, worker: _Worker) -> None:
        read, write = os.pipe()
        try:
            command = [*self.command, "--worker-of", str(os.getpid())]
            command += ["--worker-ready-fd", str(write)]
            # Our own command line again: nothing in it comes from a caller.
            worker.process = subprocess.Popen(command, pass_fds=(write,))  # noqa: S603
        finally:
            os.close(write)
        worker.ready_pipe = read
        worker.ready = False
        logger.info("worker %d started (pid %d)", worker.slot, worker.process.pid)

    def _wait_for_news(self, timeout: float) -> None:
        """Wait up to ``timeout`` for a worker to report ready (or for a signal)."""
        pipes = {w.ready_pipe: w for w in self.workers if w.ready_pipe is not None}
        if not pipes:
            time.sleep(timeout)
            return
        readable, _, _ = select.select(list(pipes), [], [], timeout)
        for pipe in readable:
            worker = pipes[pipe]
            if os.read(pipe, 1):
                worker.ready = True
                worker.failures = 0
                logger.info("worker %d ready (pid %d)", worker.slot, _pid(worker))
            self._close_pipe(worker)

    def _reap(self) -> None:
        for worker in self.workers:
            process = worker.process
            if process is None or self.stopping:
                continue
            code = process.poll()
            if code is None:
                continue
            worker.process = None
            self._close_pipe(worker)
            how = f"code {code}" if code >= 0 else f"signal {signal.Signals(-code).name}"
            if code == FATAL_EXIT:
                logger.error("worker %d (pid %d) cannot start (%s): stopping", worker.slot,
                             process.pid, how)  # fmt: skip
                self._give_up(FATAL_EXIT)
                return
            if not worker.ready:
                worker.failures += 1
                if worker.failures >= _START_FAILURES:
                    logger.error(
                        "worker %d failed %d times in a row before it was ready (last: %s): "
                        "stopping", worker.slot, worker.failures, how,
                    )  # fmt: skip
                    self._give_up(1)
                    return
            delay = 0.5 * worker.failures
            worker.restart_at = time.monotonic() + delay
            logger.warning("worker %d (pid %d) exited with %s; restarting it%s", worker.slot,
                           process.pid, how, f" in {delay:g}s" if delay else "")  # fmt: skip

    def _restart_due(self) -> None:
        now = time.monotonic()
        for worker in self.workers:
            if worker.process is None and not self.stopping and worker.restart_at <= now:
                self._start(worker)

    def _give_up(self, code: int) -> None:
        self.exit_code = code
        self.stopping = True

    # --- stopping -------------------------------------------------------------------------

    def _stop_all(self) -> None:
        """SIGTERM to every worker; kill the ones still running after the grace period."""
        running = [w.process for w in self.workers if w.process is not None]
        for process in running:
            with contextlib.suppress(ProcessLookupError):
                process.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + self.stop_after
        for process in running:
            try:
                process.wait(timeout=max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                logger.warning("worker pid %d still running %gs after SIGTERM: killed",
                               process.pid, self.stop_after)  # fmt: skip
                process.kill()
                process.wait()
        for worker in self.workers:
            worker.process = None
            self._close_pipe(worker)

    @staticmethod
    def _close_pipe(worker: _Worker) -> None:
        if worker.ready_pipe is not None:
            with contextlib.suppress(OSError):
                os.close(worker.ready_pipe)
            worker.ready_pipe = None


def _pid(worker: _Worker) -> int:
    return worker.process.pid if worker.process is not None else -1


def worker_command(arguments: list[str]) -> list[str]:
    """``orchestrion <arguments>`` as this interpreter runs it (entry point or not)."""
    return [sys.executable, "-m", "orchestrion", *arguments]


def serve(config: Any, sock: socket.socket, ready_fd: int) -> bool:
    """Run uvicorn's server with ``config`` on ``sock`` until it is told to stop;
    report readiness on ``ready_fd`` once it serves. False if it never started."""
    import uvicorn

    class _Reporting(uvicorn.Server):
        async def startup(self, sockets: list[socket.socket] | None = None) -> None:
            await super().startup(sockets=sockets)
            if self.started:
                notify_ready(ready_fd)

    server = _Reporting(config)
    try:
        server.run(sockets=[sock])
    finally:
        sock.close()
    return server.started
