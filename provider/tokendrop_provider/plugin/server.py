"""The go-plugin side of the provider: refuse to run by hand, serve gRPC over TLS on a private unix
socket, print the handshake line, and shut down when Terraform asks.

Terraform launches the provider with TF_PLUGIN_MAGIC_COOKIE set and reads one line from stdout:
`1|6|unix|<socket>|grpc|<base64 DER certificate>`. The certificate is a fresh ECDSA P-256 key pair
made in memory for this launch; it never touches the disk. Terraform pins it as the only trusted
root. (go-plugin's client certificate is P-521/SHA-512, which grpcio cannot verify, so the server
does not require one; the socket lives in a 0700 directory that only this user can reach.)
"""

from __future__ import annotations

import base64
import logging
import os
import shutil
import signal
import sys
import tempfile
import threading
from concurrent import futures

import grpc

from .certificate import make_certificate

MAGIC_COOKIE_KEY = "TF_PLUGIN_MAGIC_COOKIE"
MAGIC_COOKIE_VALUE = "d602bf8f470bc67ca7faa0386276bbdd4330efaf76d1a219cb4d6991ca9872b2"
CORE_PROTOCOL_VERSION = 1
APP_PROTOCOL_VERSION = 6
# Terraform's default parallelism is 10; leave room for the controller and broker streams.
MAX_WORKERS = 24
MAX_MESSAGE_BYTES = 256 * 1024 * 1024

log = logging.getLogger("tokendrop.plugin")

REFUSAL = """\
terraform-provider-tokendrop is a Terraform plugin, not a command to run by hand.

Terraform starts it for you. Declare it in your configuration:

    terraform {
      required_providers {
        tokendrop = { source = "tokendrop/tokendrop" }
      }
    }

then run `tokendrop provider install` once so that `terraform init` finds it offline.
"""


def handshake_line(socket_path: str, cert_der: bytes) -> str:
    cert = base64.b64encode(cert_der).decode().rstrip("=")
    return f"{CORE_PROTOCOL_VERSION}|{APP_PROTOCOL_VERSION}|unix|{socket_path}|grpc|{cert}"


def _check_protocol_versions() -> str | None:
    offered = os.environ.get("PLUGIN_PROTOCOL_VERSIONS")
    if not offered:
        return None
    versions = {v.strip() for v in offered.split(",")}
    if str(APP_PROTOCOL_VERSION) not in versions:
        return (f"This provider speaks plugin protocol {APP_PROTOCOL_VERSION}, but this Terraform offers "
                f"{offered}. Use Terraform 1.0 or newer.")
    return None


class PluginServer:
    """Owns the gRPC server, its socket directory and the shutdown signal."""

    def __init__(self, register: callable) -> None:  # type: ignore[valid-type]
        self._register = register
        self._shutdown = threading.Event()
        self._socket_dir = ""
        self.server: grpc.Server | None = None

    def request_shutdown(self) -> None:
        self._shutdown.set()

    def _watch_parent(self, parent: int) -> None:
        # If Terraform dies without asking us to shut down (SIGKILL, OOM), nobody ever will: exit
        # instead of lingering. Calls in flight still get the grace period below.
        while not self._shutdown.wait(1.0):
            if os.getppid() != parent:
                log.warning("terraform (pid %s) is gone; shutting down", parent)
                self._shutdown.set()

    def serve(self) -> int:
        if os.environ.get(MAGIC_COOKIE_KEY) != MAGIC_COOKIE_VALUE:
            sys.stderr.write(REFUSAL)
            return 1
        problem = _check_protocol_versions()
        if problem:
            sys.stderr.write(problem + "\n")
            return 1
        # Ctrl-C in a terminal signals the whole process group. Terraform then asks us to stop
        # (StopProvider) and waits for the calls in flight; dying here would lose tokens already
        # minted but not yet in state.
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, lambda *_: self._shutdown.set())

        self._socket_dir = tempfile.mkdtemp(prefix="tokendrop-plugin-")  # created 0700
        os.chmod(self._socket_dir, 0o700)
        socket_path = os.path.join(self._socket_dir, "plugin.sock")
        try:
            cert_der, cert_pem, key_pem = make_certificate()
            server = grpc.server(
                futures.ThreadPoolExecutor(max_workers=MAX_WORKERS, thread_name_prefix="rpc"),
                options=[("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
                         ("grpc.max_send_message_length", MAX_MESSAGE_BYTES)],
            )
            self._register(server, self)
            server.add_secure_port(f"unix:{socket_path}", grpc.ssl_server_credentials([(key_pem, cert_pem)]))
            server.start()
            self.server = server
            sys.stdout.write(handshake_line(socket_path, cert_der) + "\n")
            sys.stdout.flush()
            log.debug("serving on %s", socket_path)
            threading.Thread(target=self._watch_parent, args=(os.getppid(),), daemon=True,
                             name="parent-watch").start()
            # Wake now and then: a SIGTERM delivered to a gRPC thread runs its Python handler only once
            # the main thread executes bytecode again.
            while not self._shutdown.wait(0.5):
                pass
            log.debug("shutting down")
            # Calls in flight get time to finish; Terraform only asks for shutdown once it is done.
            server.stop(grace=30).wait()
            return 0
        finally:
            shutil.rmtree(self._socket_dir, ignore_errors=True)
