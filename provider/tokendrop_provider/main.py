"""Entry point of `terraform-provider-tokendrop`, the executable Terraform launches."""

from __future__ import annotations


def main() -> int:
    # Keep this path lean: start-up to handshake is import time. boto3, hvac and the issuer clients
    # load on first use.
    from . import logs
    from .secret import register_environment

    # Before anything can fail or log: credentials boto3 and hvac read themselves are scrubbed too, and
    # no exception reaches stderr without passing the scrubber.
    register_environment()
    logs.install_guards()
    logs.configure()

    from .plugin import service
    from .plugin.server import PluginServer
    from .provider import ProviderCore

    return PluginServer(service.register(ProviderCore())).serve()


if __name__ == "__main__":
    raise SystemExit(main())
