"""Scale benchmark: N tokens spread over 10 TFE agent pools (SSM sinks), against the sandbox with 50 ms
of latency per issuer request and the real rate limits switched on. Prints one table.

For each N: `terraform apply` (create) wall time next to the rate-limit floor of that work (issuer calls
÷ allowed rate), `terraform plan` (refresh) wall time with the number of issuer and sink calls, the same
plan with batching switched off (one call per token, as other providers do), a `terraform_data` plan of
N resources as the floor, the provider's peak RSS during the plan, and the same plan over the peer (a
provider with the same schemas on the PyPI `tf` framework, no API behind it: bench/peer_provider.py).
Above the table: provider launches timed from exec (to the handshake, and to exit for a launch that
only answers GetProviderSchema or ValidateResourceConfig), ours and the peer's.

Usage: python bench/scale.py [N ...] [--latency SECONDS] [--pools P]
"""

from __future__ import annotations

import argparse
import math
import statistics
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import peer
from common import HEADER, BenchSandbox, measuring_launcher, print_rows, sandbox, terraform, tfe_tokens_config

TFE_LIMIT, TFE_WINDOW = 30, 1.0  # HCP Terraform: 30 requests per second per user
BUILDKITE_LIMIT, BUILDKITE_WINDOW = 50, 60.0  # Buildkite: 50 per minute per user binds before 200/min per org


def rate_floor(calls: int, issuer: str) -> float:
    """The least time `calls` requests can take under the documented limit, starting from a fresh window.
    The limits are counted in windows (`limit` calls per `window` seconds), so every call past the first
    window's worth waits for a later window: the last batch can go at the start of window ceil(calls /
    limit). (A smooth calls ÷ rate would understate Buildkite's minute windows: 131 calls need 120 s.)"""
    limit, window = (TFE_LIMIT, TFE_WINDOW) if issuer == "tfe" else (BUILDKITE_LIMIT, BUILDKITE_WINDOW)
    return max(0, math.ceil(calls / limit) - 1) * window


@dataclass
class Row:
    n: int
    issuer: str = "tfe"
    create_plan_s: float = 0.0
    synth_s: float = 0.0
    bare_synth_s: float = 0.0
    apply_s: float = 0.0
    apply_tfe_calls: int = 0
    apply_ssm_calls: int = 0
    apply_429: int = 0
    floor_s: float = 0.0
    plan_s: float = 0.0
    plan_tfe_calls: int = 0
    plan_ssm_calls: int = 0
    unbatched_plan_s: float = 0.0
    unbatched_tfe_calls: int = 0
    unbatched_ssm_calls: int = 0
    data_plan_s: float = 0.0
    peer_plan_s: float = 0.0
    peak_rss_mib: float = 0.0


def tokens_config(n: int, pools: int) -> str:
    return tfe_tokens_config(n, pools, HEADER, 'deliver_to = {{ ssm = {{ name = "{path}" }} }}')


def buildkite_config(n: int, clusters: int) -> str:
    body = [HEADER]
    for c in range(clusters):
        body.append(f'resource "tokendrop_buildkite_cluster" "c{c}" {{\n  name = "bench-{c}"\n}}\n')
    for i in range(n):
        c = i % clusters
        body.append(f'resource "tokendrop_buildkite_cluster_token" "t{i}" {{\n'
                    f"  cluster_id = tokendrop_buildkite_cluster.c{c}.id\n  description = \"bench {i}\"\n"
                    f'  deliver_to = {{ ssm = {{ name = "/bench/c{c}/t{i}" }} }}\n}}\n')
    return "".join(body)


def data_config(n: int) -> str:
    return "".join(f'resource "terraform_data" "d{i}" {{\n  input = "{i}"\n}}\n' for i in range(n))


def issuer_of(box: BenchSandbox, issuer: str):  # type: ignore[no-untyped-def]
    return box.tfe if issuer == "tfe" else box.buildkite


def calls(box: BenchSandbox, issuer: str) -> tuple[int, int, int]:
    """(issuer calls, SSM calls, issuer 429 answers) since the last reset."""
    requests = issuer_of(box, issuer).requests()
    return (len(requests), sum(box.moto.calls().values()), sum(1 for r in requests if r["status"] == 429))


def reset_counts(box: BenchSandbox) -> None:
    """Zero the counters and start every rate-limit window afresh, so each phase is measured alone."""
    box.tfe.clear_requests()
    box.buildkite.clear_requests()
    box.moto.reset_counters()
    box.tfe.set_rate_limit(enabled=True)
    box.buildkite.set_rate_limit(enabled=True)


def measure_synth(row: Row, repeat: int) -> None:
    """`cdktf synth` of N tokens next to N bare cdktf resources (bench/synth.py), median of `repeat`."""
    from synth import CDKTF, Case

    if not CDKTF.exists():
        return
    with tempfile.TemporaryDirectory(prefix="bench-synth-") as tmp:
        ours, bare = Case("tokendrop", row.n, Path(tmp)), Case("baseline", row.n, Path(tmp))
        for _ in range(repeat):  # interleaved, so that load changes hit both alike
            ours.run()
            bare.run()
        row.synth_s, row.bare_synth_s = ours.median("wall"), bare.median("wall")


def run(n: int, pools: int, latency: float, synth_repeat: int = 3, issuer: str = "tfe") -> Row:
    row = Row(n, issuer)
    if synth_repeat and issuer == "tfe":
        measure_synth(row, synth_repeat)
    with sandbox(rate_limits=True) as box:
        api = issuer_of(box, issuer)
        api.set_latency(latency)
        work = Path(tempfile.mkdtemp(dir=box.root))
        (work / "main.tf").write_text(tokens_config(n, pools) if issuer == "tfe" else buildkite_config(n, pools))
        env = dict(box.env)
        terraform(work, env, "init", "-input=false")

        row.create_plan_s = terraform(work, env, "plan", "-input=false", "-out=create.tfplan")
        reset_counts(box)
        # The apply of the saved plan: the part the rate limits govern (the plan before it is shown apart).
        row.apply_s = terraform(work, env, "apply", "-input=false", "create.tfplan")
        row.apply_tfe_calls, row.apply_ssm_calls, row.apply_429 = calls(box, issuer)
        row.floor_s = rate_floor(row.apply_tfe_calls, issuer)

        reset_counts(box)
        row.plan_s = terraform(work, env, "plan", "-input=false", "-detailed-exitcode")
        row.plan_tfe_calls, row.plan_ssm_calls, _ = calls(box, issuer)

        reset_counts(box)
        row.unbatched_plan_s = terraform(work, {**env, "TOKENDROP_BATCH_READS": "0"}, "plan", "-input=false",
                                         "-detailed-exitcode")
        row.unbatched_tfe_calls, row.unbatched_ssm_calls, _ = calls(box, issuer)

        rss_file = box.root / "rss.txt"
        rss_env = {**env, "TF_CLI_CONFIG_FILE": str(measuring_launcher(box)), "TOKENDROP_BENCH_RSS_FILE": str(rss_file)}
        (work / ".terraform.lock.hcl").unlink()
        terraform(work, rss_env, "init", "-input=false", "-upgrade")
        terraform(work, rss_env, "plan", "-input=false", "-detailed-exitcode")
        values = [int(line) for line in rss_file.read_text().split()] if rss_file.exists() else [0]
        row.peak_rss_mib = max(values) / 1024

        api.set_latency(0)
        (work / ".terraform.lock.hcl").unlink()
        terraform(work, env, "init", "-input=false", "-upgrade")
        terraform(work, env, "destroy", "-auto-approve", "-input=false")

        floor_dir = Path(tempfile.mkdtemp(dir=box.root))
        (floor_dir / "main.tf").write_text(data_config(n))
        terraform(floor_dir, env, "init", "-input=false")
        terraform(floor_dir, env, "apply", "-auto-approve", "-input=false")
        row.data_plan_s = statistics.median(terraform(floor_dir, env, "plan", "-input=false") for _ in range(3))
        if issuer == "tfe" and peer.available():
            row.peer_plan_s = peer.plan_seconds(n, pools, env)
    return row


def print_launches(launches: dict[str, dict[str, list[float]]]) -> None:
    """Median milliseconds of each launch measurement (bench/handshake.py), one line per provider; the
    per-RPC CPU (samples named "... per RPC") in microseconds."""
    for who, samples in launches.items():
        runs = len(samples["handshake"])
        parts = [f"{name} {statistics.median(values) * 1e6:.0f} us" if name.endswith("per RPC")
                 else f"{name} {statistics.median(values) * 1000:.0f} ms" for name, values in samples.items()]
        print(f"{who} launches from exec, median of {runs}: " + ", ".join(parts))


def print_table(rows: list[Row], latency: float, pools: int,
                launches: dict[str, dict[str, list[float]]]) -> None:
    print(f"tokendrop scale benchmark: tokens spread over {pools} TFE agent pools / Buildkite clusters, SSM sinks, "
          f"{latency * 1000:.0f} ms per issuer request, real rate limits on (TFE {TFE_LIMIT} req/s per user; "
          "Buildkite 200/min per organization and 50/min per user); floor = the least time the apply's issuer calls "
          "take under that limit from a fresh window; apply = `terraform apply` of the saved create plan")
    print_launches(launches)
    header = ["issuer", "N", "synth s", "bare synth s", "create plan s", "apply s", "floor s", "apply/floor",
              "apply calls API+SSM", "429s", "plan s", "plan calls API+SSM", "unbatched plan s",
              "unbatched calls API+SSM", "terraform_data plan s", "peer plan s", "peak RSS MiB"]
    lines = [[r.issuer, str(r.n), f"{r.synth_s:.1f}" if r.synth_s else "-",  # synth is measured for TFE only
              f"{r.bare_synth_s:.1f}" if r.bare_synth_s else "-", f"{r.create_plan_s:.1f}",
              f"{r.apply_s:.1f}", f"{r.floor_s:.1f}",
              f"{r.apply_s / r.floor_s:.2f}" if r.floor_s else "(in budget)",
              f"{r.apply_tfe_calls}+{r.apply_ssm_calls}", str(r.apply_429), f"{r.plan_s:.1f}",
              f"{r.plan_tfe_calls}+{r.plan_ssm_calls}", f"{r.unbatched_plan_s:.1f}",
              f"{r.unbatched_tfe_calls}+{r.unbatched_ssm_calls}", f"{r.data_plan_s:.2f}",
              f"{r.peer_plan_s:.2f}" if r.peer_plan_s else "-", f"{r.peak_rss_mib:.0f}"] for r in rows]
    print_rows(header, lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("sizes", nargs="*", type=int, default=[10, 100, 1000])
    parser.add_argument("--latency", type=float, default=0.05)
    parser.add_argument("--pools", type=int, default=10)
    parser.add_argument("--no-handshake", action="store_true")
    parser.add_argument("--synth-repeat", type=int, default=3, help="cdktf synth runs per N (0: skip)")
    parser.add_argument("--buildkite", type=int, nargs="*", default=[10, 100], metavar="N",
                        help="Buildkite variant sizes (its 50 requests/min budget makes N=1000 take 20+ minutes)")
    args = parser.parse_args()
    launches: dict[str, dict[str, list[float]]] = {}
    if not args.no_handshake:
        from handshake import handler_cpu, measure_launches, rpc_cpu

        launches["tokendrop"] = measure_launches(20)
        # Provider CPU per ValidateResourceConfig over gRPC (1,000 calls, 10 at a time), and the handler's share.
        launches["tokendrop"]["CPU per RPC"] = [rpc_cpu() for _ in range(3)]
        launches["tokendrop"]["handler CPU per RPC"] = [handler_cpu()]
        if peer.available():
            launches["peer (tf framework)"] = measure_launches(20, peer.command(), peer.validate_request())
            launches["peer (tf framework)"]["CPU per RPC"] = [rpc_cpu(peer.command(), peer.validate_request())
                                                             for _ in range(3)]
    rows = []
    for n in args.sizes:
        started = time.monotonic()
        rows.append(run(n, args.pools, args.latency, args.synth_repeat))
        print(f"  (TFE N={n} done in {time.monotonic() - started:.0f} s)", flush=True)
    for n in args.buildkite:
        started = time.monotonic()
        rows.append(run(n, args.pools, args.latency, 0, issuer="buildkite"))
        print(f"  (Buildkite N={n} done in {time.monotonic() - started:.0f} s)", flush=True)
    print_table(rows, args.latency, args.pools, launches)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
