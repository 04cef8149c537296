"""`tokendrop audit`: every token tokendrop manages, and what needs attention about it.

- `state`: read Terraform states (state files, `state pull`, `show -json`) for tokendrop resources.
- `collect`: list the issuers' scopes and read the sinks' metadata through the provider's clients.
- `evaluate`: the flags (orphan, revoked, sink_drift, rotation_overdue, expiring, previous_overdue).
- `render`: the table and the JSON document.
- `command`: the CLI subcommand and its exit codes.

Nothing here fetches, holds or prints a token value: issuers are listed, sinks are described.
"""

from .command import add_command, run

__all__ = ["add_command", "run"]
