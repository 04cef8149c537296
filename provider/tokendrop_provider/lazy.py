"""One lock for the first import of heavy modules (requests, boto3, hvac, the issuer clients).

They load on demand so that start-up stays fast, which means in whichever RPC thread needs them first.
Two threads importing overlapping packages at once (requests via hvac in one, via an issuer client in
the other) can trip Python's import deadlock avoidance and see a partially initialized module
("cannot import name ... from partially initialized module"). Serializing first imports prevents it;
later imports find the modules loaded and do not wait.
"""

from __future__ import annotations

import threading

IMPORT_LOCK = threading.RLock()
