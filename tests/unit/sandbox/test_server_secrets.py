"""The sandbox's OpenBao root token stays private: not on the command line (/proc/<pid>/cmdline is
readable by every local user), not in a world-readable log; and it still works."""

from __future__ import annotations

import stat
from pathlib import Path

from tokendrop_provider import leaks
from tokendrop_provider.sandbox.servers import OpenBaoServer


def test_root_token_is_not_on_the_command_line(openbao_server: OpenBaoServer):
    cmdline = Path(f"/proc/{openbao_server.pid}/cmdline").read_bytes()
    assert b"server\x00-dev" in cmdline  # the right process
    assert leaks.scan_items({"root token": openbao_server.root_token}, [("cmdline", cmdline)]).hits == []
    lookup = openbao_server.api("GET", "auth/token/lookup-self")
    assert lookup["data"]["id"] == openbao_server.root_token  # the token from the environment is the root


def test_server_logs_are_private(openbao_server: OpenBaoServer):
    assert stat.S_IMODE(openbao_server.log_path.stat().st_mode) == 0o600
