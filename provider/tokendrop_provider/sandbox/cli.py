"""`tokendrop sandbox`: local emulators and servers for trying tokendrop without real accounts."""

from __future__ import annotations

import argparse


def add_commands(commands: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    sandbox = commands.add_parser("sandbox", help="run the local sandbox (emulated TFE, moto SSM, OpenBao)")
    sandbox.set_defaults(handler=lambda args: sandbox.print_help() or 2)
