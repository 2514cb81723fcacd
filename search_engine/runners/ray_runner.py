"""``ray``: a pool of Ray actors, each building its evaluators once (loading the supernet and the data
set), evaluating archs as they are handed out: a new arch goes to whichever worker frees up first,
so a slow arch does not stall the others.

Faults: an actor whose process dies is restarted by Ray (``max_restarts``) and the arch it held is
run again (``max_task_retries``); past those bounds the arch is yielded as failed and the actor
replaced. An exception raised by the evaluation itself is the arch's failure (recorded, the search
goes on), except a ``HynasError`` (bad setup), which stops the run. The driver writes each result to
the store as it arrives (see ``loop.run_search``), so a killed driver loses only the archs in flight.

Without an address a local Ray instance is started (dashboard off); ``address`` (``auto`` on a node of
the cluster, ``HEAD_IP:6379``, or ``ray://HEAD_IP:10001`` with Ray Client installed) joins a cluster,
whose nodes need hynas installed and the run's files (checkpoint, data, table) at the same paths. A
hardware profile with ``node: <ip>`` places every worker on that node, so that all latencies come from
one device.
"""
from __future__ import annotations

import contextlib
import logging
import os
import signal
import socket
import threading
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import ray
from ray.exceptions import RayActorError, RayTaskError

from search_engine.evaluators.base import Evaluator
from search_engine.runners.base import RUNNERS
from search_space.errors import ConfigError, HynasError
from search_space.logs import logger_held_at
from search_space.objectives import Metrics

log = logging.getLogger("hynas.runner")
ACTOR_RESTARTS = 3  # per actor: process deaths Ray recovers from by restarting it
TASK_RETRIES = 2  # per arch: re-runs after its worker died


@ray.remote(num_cpus=1, max_restarts=ACTOR_RESTARTS, max_task_retries=TASK_RETRIES)
class EvaluatorActor:
    def __init__(self, build_evaluator: Callable[[], Evaluator], threads: int) -> None:
        import torch

        torch.set_num_threads(threads)  # one core per worker: measurements stay comparable
        self.evaluator = build_evaluator()
        self.host = socket.gethostname()

    def evaluate(self, arch: Any) -> Metrics:
        (metrics,) = self.evaluator.evaluate([arch])
        return Metrics(metrics.values, metrics.seconds, {**metrics.meta, "worker_host": self.host,
                                                         "worker_pid": os.getpid()})

    def pid(self) -> int:
        return os.getpid()


PROBE_SECONDS = 5.0  # a cluster's head answers a TCP connect at once; only a wrong address waits this long
# A client's opening of HTTP/2 (RFC 9113 3.4): the preface, then an empty SETTINGS frame. Ray's GCS and client
# server speak gRPC, so they answer with a SETTINGS frame of their own (frame type 4 in the header's 4th byte).
HTTP2_OPENING = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + bytes([0, 0, 0, 4, 0, 0, 0, 0, 0])
SETTINGS_FRAME = 4


def _speaks_grpc(connection: socket.socket) -> bool:
    """Whether the server behind ``connection`` answers as an HTTP/2 (gRPC) server does."""
    connection.sendall(HTTP2_OPENING)
    header = b""
    try:
        while len(header) < 9 and (chunk := connection.recv(9 - len(header))):
            header += chunk
    except OSError:
        return False
    return len(header) == 9 and header[3] == SETTINGS_FRAME


def check_ray_address(address: str) -> None:
    """A one-line ``ConfigError`` unless something accepts connections at ``address`` (``host:port``,
    ``ray://host:port``, or ``auto``: the cluster Ray would join, ``RAY_ADDRESS`` or the last ``ray start`` here).

    Ray itself retries an unreachable address for minutes, printing only its own warnings."""
    given = address
    if address == "auto":
        # Ray has no public call that says where "auto" leads; its own resolution, so that a missing cluster
        # stops the command before its run folder is made (ray.init would only find out after).
        try:
            from ray._private.services import canonicalize_bootstrap_address
        except ImportError:  # gone in some later Ray: ray.init still refuses, after the folder is made
            return
        try:
            address = canonicalize_bootstrap_address("auto")
        except (ConnectionError, ValueError) as err:
            raise ConfigError(f"--address auto: cannot join the Ray cluster ({err})") from None
    host, _, port = address.removeprefix("ray://").rpartition(":")
    if not host or not port.isdigit():
        raise ConfigError(f"--address {address}: expected host:port, ray://host:port or auto")
    where = address if given == address else f"auto ({address})"
    try:
        connection = socket.create_connection((host.strip("[]"), int(port)), timeout=PROBE_SECONDS)
    except OSError as err:
        raise ConfigError(f"--address {where}: no Ray cluster answers there ({err}); "
                          "start one with `ray start --head` or fix the address") from None
    with connection:
        # Ray would retry such a server for minutes, printing a warning every few seconds
        if not _speaks_grpc(connection):
            raise ConfigError(f"--address {where}: something answers there, but not a Ray cluster (its GCS, "
                              "`ray start --head --port`, 6379 by default; 8265 is the dashboard's)")


def start_ray(address: str | None, workers: int) -> bool:
    """Connect to ``address`` or start a local instance; True when this call started it."""
    if ray.is_initialized():
        return False
    if address:
        check_ray_address(address)
    with _sigterm_handler_kept():
        _init_ray(address, workers)
    return True


@contextlib.contextmanager
def _sigterm_handler_kept() -> Iterator[None]:
    """``ray.init`` sets its own SIGTERM handler (``sys.exit(15)``), so a scheduler's SIGTERM ended the driver at
    once (exit 15, claims left running) where the hynas CLI stops it as it stops on Ctrl-C (claims withdrawn,
    tables written, exit 143). A handler set from Python before (the CLI's) is put back; a default one is not."""
    previous = signal.getsignal(signal.SIGTERM)
    try:
        yield
    finally:
        if callable(previous) and threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGTERM, previous)


def _init_ray(address: str | None, workers: int) -> None:
    try:
        if address:
            ray.init(address=address, log_to_driver=False, configure_logging=False)
        else:
            # Since Ray 2.59 each new local instance warns that it enabled token authentication by default, a notice
            # for people who run clusters: the instance hynas starts lives as long as its command, and the notice
            # was the only line a `-q` search printed besides its result. Ray's other warnings still show.
            with logger_held_at("ray._private.authentication.authentication_token_setup", logging.ERROR):
                ray.init(num_cpus=max(workers, os.cpu_count() or 1), include_dashboard=False, log_to_driver=False,
                         configure_logging=False)
    except (ConnectionError, ValueError, RuntimeError) as err:
        raise ConfigError(f"--address {address}: cannot join the Ray cluster ({err}){_token_hint(address)}") from None


def _token_hint(address: str | None) -> str:
    """Since Ray 2.59 a head started where a token exists (``~/.ray/auth_token``, made by any local ``ray.init``)
    requires it, and Ray sends it to an explicit address only when told to: its refusal reads only as
    'Failed to connect'."""
    if not address or address == "auto" or os.environ.get("RAY_AUTH_MODE", "").lower() == "token":
        return ""
    return ("; if its head requires a token (Ray's default since 2.59), set RAY_AUTH_MODE=token and "
            "RAY_AUTH_TOKEN to what `ray get-auth-token` prints there")


def node_addresses(address: str | None) -> list[str]:
    """The IP addresses a hardware profile's ``node`` may name: those of the live nodes of the cluster at
    ``address`` (joined here; the runner reuses the connection), or this host's, where a local instance starts."""
    if address and not ray.is_initialized():
        start_ray(address, workers=1)
    if ray.is_initialized():
        return sorted({node["NodeManagerAddress"] for node in ray.nodes() if node["Alive"]})
    return [ray.util.get_node_ip_address()]


@RUNNERS.register("ray")
class RayRunner:
    def __init__(self, build_evaluator: Callable[[], Evaluator], workers: int = 2, address: str | None = None,
                 threads: int = 1, node: str | None = None, **_: Any) -> None:
        self._owns_ray = start_ray(address, workers)
        options = {"resources": {f"node:{node}": 0.001}} if node else {}
        self._make = lambda: EvaluatorActor.options(**options).remote(build_evaluator, threads)
        self.actors = [self._make() for _ in range(workers)]
        log.info("ray runner: %d workers on %s", workers, address or "a local Ray instance")

    def submit(self, archs: Sequence[Any]) -> Iterator[tuple[Any, Metrics | Exception]]:
        queue, idle, pending = list(archs), list(self.actors), {}
        try:
            yield from self._results(queue, idle, pending)
        finally:  # the driver stopped early (Ctrl-C, an error): no retries of what is still running
            for ref in pending:
                ray.cancel(ref)

    def _results(self, queue: list, idle: list, pending: dict) -> Iterator[tuple[Any, Metrics | Exception]]:
        """``submit``'s results as they arrive; ``pending`` (object ref -> arch, actor) is what is still running."""
        while queue or pending:
            while queue and idle:
                actor = idle.pop()
                arch = queue.pop(0)
                pending[actor.evaluate.remote(arch)] = (arch, actor)
            (ref,), _ = ray.wait(list(pending), num_returns=1)
            arch, actor = pending.pop(ref)
            try:
                yield arch, ray.get(ref)
                idle.append(actor)
            except RayTaskError as err:  # the evaluation raised: this arch's failure
                cause = err.cause if isinstance(err.cause, BaseException) else err
                if isinstance(cause, HynasError):
                    raise cause from None
                log.warning("evaluation of %s failed: %s: %s", arch, type(cause).__name__, cause)
                idle.append(actor)
                yield arch, cause
            except RayActorError as err:  # the worker died more often than Ray restarts it
                log.warning("worker lost while evaluating %s (%s); replacing it", arch, err)
                self.actors.remove(actor)
                replacement = self._make()
                self.actors.append(replacement)
                idle.append(replacement)
                yield arch, err

    def worker_pids(self) -> list[int]:
        return ray.get([a.pid.remote() for a in self.actors])

    def close(self) -> None:
        for actor in self.actors:
            ray.kill(actor)
        self.actors = []
        if self._owns_ray:
            ray.shutdown()
