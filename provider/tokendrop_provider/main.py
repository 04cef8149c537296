"""Entry point of `terraform-provider-tokendrop`, the executable Terraform launches."""

from __future__ import annotations

import logging
import os
import sys


def main() -> int:
    # Keep this path lean: start-up to handshake is import time. The provider core loads with the
    # first RPC that needs it; boto3, requests and the issuer clients on first use.
    from . import lazy, logs
    from .secret import register_environment

    # Before anything can fail or log: credentials boto3 reads itself are scrubbed too, and
    # no exception reaches stderr without passing the scrubber.
    register_environment()
    logs.install_guards()
    logs.configure()
    lazy.import_grpc_core()
    from .plugin import routes
    from .plugin.server import PluginServer

    # The provider core and protobuf load with the first call that needs them (plugin/routes.py).
    code = PluginServer(routes.register).serve()
    exit_without_teardown(code)
    return code  # not reached


def exit_without_teardown(code: int) -> None:
    """Exit once the server has stopped and every call has finished, skipping interpreter teardown:
    unloading grpc, boto3 and their threads took up to 170 ms per launch, and Terraform waits for the
    process to end before it moves on. Logs and stdio are flushed first; nothing else is pending."""
    logging.shutdown()
    for stream in (sys.stdout, sys.stderr):
        stream.flush()
    os._exit(code)


if __name__ == "__main__":
    raise SystemExit(main())
