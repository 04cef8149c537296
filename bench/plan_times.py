"""`terraform plan` wall time for 1, 10 and 100 tokens (one pool, SSM sinks) against the sandbox, next
to a `terraform_data` configuration of the same size.

Usage: python bench/plan_times.py [N ...]
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

from common import HEADER, median_of, sandbox, terraform


def tokens_config(n: int) -> str:
    body = [HEADER, 'resource "tokendrop_tfe_agent_pool" "p" {\n  organization = "acme"\n  name = "bench"\n}\n']
    for i in range(n):
        body.append(f'resource "tokendrop_tfe_agent_token" "t{i}" {{\n'
                    f'  agent_pool_id = tokendrop_tfe_agent_pool.p.id\n'
                    f'  deliver_to = {{ ssm = {{ name = "/bench/t{i}" }} }}\n}}\n')
    return "".join(body)


def data_config(n: int) -> str:
    return "".join(f'resource "terraform_data" "d{i}" {{\n  input = "{i}"\n}}\n' for i in range(n))


def main() -> int:
    sizes = [int(a) for a in sys.argv[1:]] or [1, 10, 100]
    rows = []
    with sandbox() as box:
        for n in sizes:
            work = Path(tempfile.mkdtemp(dir=box.root))
            (work / "main.tf").write_text(tokens_config(n))
            terraform(work, box.env, "init", "-input=false")
            terraform(work, box.env, "apply", "-auto-approve", "-input=false")
            plan = median_of(3, lambda w=work: terraform(w, box.env, "plan", "-input=false"))
            terraform(work, box.env, "destroy", "-auto-approve", "-input=false")
            floor_dir = Path(tempfile.mkdtemp(dir=box.root))
            (floor_dir / "main.tf").write_text(data_config(n))
            terraform(floor_dir, box.env, "init", "-input=false")
            terraform(floor_dir, box.env, "apply", "-auto-approve", "-input=false")
            floor = median_of(3, lambda d=floor_dir: terraform(d, box.env, "plan", "-input=false"))
            rows.append((n, plan, floor))
    print(f"{'tokens':>7} | {'tokendrop plan (s)':>18} | {'terraform_data plan (s)':>23}")
    print(f"{'-' * 7}-+-{'-' * 18}-+-{'-' * 23}")
    for n, plan, floor in rows:
        print(f"{n:>7} | {plan:>18.2f} | {floor:>23.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
