"""The `tokendrop` command: provider installation, the local sandbox, and audits."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def _provider_install(args: argparse.Namespace) -> int:
    from .install import default_mirror, install

    installed = install(Path(args.dir) if args.dir else None)
    implied = args.dir is None or Path(args.dir).expanduser().resolve() == default_mirror().resolve()
    print(f"Installed {installed.source} {installed.version} ({installed.platform})")
    print(f"  {installed.path}")
    print()
    print("Use it in your configuration with:")
    print()
    print('  terraform {\n    required_providers {\n      tokendrop = {\n'
          f'        source  = "tokendrop/tokendrop"\n        version = "{installed.version}"\n'
          '      }\n    }\n  }')
    print()
    if implied:
        print("This is Terraform's implied local mirror: `terraform init` finds it with no further set-up,")
        print("unless your CLI configuration has an explicit provider_installation block; then add:")
    else:
        print("Point Terraform at this mirror in your CLI configuration (TF_CLI_CONFIG_FILE or ~/.terraformrc):")
    print()
    print(installed.cli_config())
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="tokendrop", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)

    provider = commands.add_parser("provider", help="install or package the Terraform provider")
    provider_commands = provider.add_subparsers(dest="provider_command", required=True)
    install = provider_commands.add_parser(
        "install", help="write the provider into a local plugin mirror so `terraform init` works offline")
    install.add_argument("--dir", help="filesystem mirror directory (default: ~/.terraform.d/plugins, "
                         "Terraform's implied local mirror)")
    install.set_defaults(handler=_provider_install)

    from .package import add_command as add_package_command

    add_package_command(provider_commands)

    from .sandbox import cli as sandbox_cli

    sandbox_cli.add_commands(commands)

    from .audit import command as audit_command

    audit_command.add_command(commands)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.handler(args) or 0)
    except KeyboardInterrupt:
        return 130
    except Exception as err:  # a readable one-line error for the terminal
        from .errors import TokendropError

        if isinstance(err, TokendropError | FileNotFoundError | OSError):
            print(f"tokendrop: {err}", file=sys.stderr)
            return 1
        raise


if __name__ == "__main__":
    raise SystemExit(main())
