"""`cdktf synth` time of a stack of N tokendrop tokens next to N bare cdktf resources; prints one table.

    .venv/bin/python bench/synth.py [--sizes 1 100 500] [--repeat 3]

Each case is a throwaway cdktf project whose app is this script (`--app`), synthesized through the real
cdktf-cli (node_modules/.bin/cdktf, so CLI start-up is included) and timed end to end; the app also
reports its own time (building the constructs, then App.synth()).

- tokendrop: the provider block, one TfeAgentPool and N tokens from `pool.add_token`, alternating
  SsmParameter (with tags) and VaultSecret sinks, each with rotate_every: validated against the schema,
  synthesized as JSON, and the provider installed into the stack directory once.
- baseline: N hand-written `TerraformResource`s of Terraform's built-in `terraform_data`, each with an
  `input` object of the same shape (what generated bindings do, minus their type checks), and one more
  for the pool. No provider, no validation: the bare cost of a cdktf resource.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
CDKTF = REPO / "node_modules" / ".bin" / "cdktf"
QUIET = {"CHECKPOINT_DISABLE": "1", "DISABLE_VERSION_CHECK": "1", "CDKTF_DISABLE_PLUGIN_CACHE_ENV": "1",
         "JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION": "20", "CI": "1", "TF_CLI_CONFIG_FILE": os.devnull}


# --- the app (run by cdktf) ------------------------------------------------------------------------

def tokendrop_stack(stack: Any, n: int) -> None:
    from datetime import timedelta

    from tokendrop import SsmParameter, TfeAgentPool, TokendropProvider, VaultSecret

    TokendropProvider(stack, "tokendrop")
    pool = TfeAgentPool(stack, "pool", organization="acme", name="bench")
    for i in range(n):
        sink = (SsmParameter(f"/bench/token-{i}", tags={"team": "ci"}) if i % 2 == 0
                else VaultSecret(f"bench/token-{i}"))
        pool.add_token(f"t{i}", deliver_to=sink, rotate_every=timedelta(days=30))


def baseline_stack(stack: Any, n: int) -> None:
    import cdktf

    class Data(cdktf.TerraformResource):
        def __init__(self, scope: Any, id: str, value: dict[str, Any]) -> None:
            super().__init__(scope, id, terraform_resource_type="terraform_data")
            self._value = value

        def _synthesize_attributes(self) -> dict[str, Any]:
            return {"input": self._value}

    pool = Data(stack, "pool", {"organization": "acme", "name": "bench"})
    pool_id = pool.get_string_attribute("id")
    for i in range(n):
        deliver_to = ({"ssm": {"name": f"/bench/token-{i}", "tags": {"team": "ci"}}} if i % 2 == 0
                      else {"vault_kv": {"mount": "secret", "path": f"bench/token-{i}", "field": "token"}})
        Data(pool, f"t{i}", {"agent_pool_id": pool_id, "deliver_to": deliver_to,
                             "rotate_every": "30d"})


def run_app(variant: str, n: int, timing_file: Path) -> None:
    started = time.perf_counter()
    import cdktf

    imported = time.perf_counter()
    app = cdktf.App()
    stack = cdktf.TerraformStack(app, "bench")
    (tokendrop_stack if variant == "tokendrop" else baseline_stack)(stack, n)
    built = time.perf_counter()
    app.synth()
    done = time.perf_counter()
    timing_file.write_text(json.dumps({"import": imported - started, "construct": built - imported,
                                       "synth": done - built}))


# --- the benchmark ---------------------------------------------------------------------------------

class Case:
    """One (variant, N): a cdktf project whose app is this script, synthesized by the real CLI."""

    def __init__(self, variant: str, n: int, work: Path) -> None:
        self.variant, self.n = variant, n
        self.project = work / f"{variant}-{n}"
        self.project.mkdir()
        self.timing = self.project / "timing.json"
        app = f"{sys.executable} {Path(__file__).resolve()} --app {variant} {n} --timing-file {self.timing}"
        (self.project / "cdktf.json").write_text(json.dumps({"language": "python", "app": app,
                                                             "sendCrashReports": "false"}))
        self.env = {**os.environ, **QUIET, "CDKTF_HOME": str(work / "cdktf-home")}
        self.runs: list[dict[str, float]] = []

    def run(self) -> None:
        shutil.rmtree(self.project / "cdktf.out", ignore_errors=True)
        started = time.perf_counter()
        done = subprocess.run([str(CDKTF), "synth"], cwd=self.project, env=self.env, capture_output=True, text=True,
                              check=False, timeout=900)
        wall = time.perf_counter() - started
        if done.returncode != 0:
            raise SystemExit(f"cdktf synth failed for {self.variant} N={self.n}:\n{done.stdout}\n{done.stderr}")
        t = json.loads(self.timing.read_text())
        self.runs.append({"wall": wall, "app": t["import"] + t["construct"] + t["synth"],
                          "work": t["construct"] + t["synth"]})

    def median(self, key: str) -> float:
        return statistics.median(r[key] for r in self.runs)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[1, 100, 500])
    parser.add_argument("--repeat", type=int, default=3, help="runs per case; the median is shown")
    parser.add_argument("--app", nargs=2, metavar=("VARIANT", "N"), help=argparse.SUPPRESS)
    parser.add_argument("--timing-file", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.app:
        run_app(args.app[0], int(args.app[1]), args.timing_file)
        return 0
    if not CDKTF.exists():
        print("cdktf-cli is missing: run `npm ci` first", file=sys.stderr)
        return 1
    rows = []
    with tempfile.TemporaryDirectory(prefix="bench-synth-") as tmp:
        for n in args.sizes:
            ours, base = Case("tokendrop", n, Path(tmp)), Case("baseline", n, Path(tmp))
            for _ in range(args.repeat):  # interleaved, so that load changes hit both alike
                ours.run()
                base.run()
            rows.append((n, ours, base))
            print(f"  measured N={n}", file=sys.stderr, flush=True)
    print(f"Seconds, median of {args.repeat} interleaved runs. wall: `cdktf synth` end to end (CLI start, app, "
          "checks); app: the Python app (import cdktf + build the constructs + App.synth); "
          "build+synth: the app without `import cdktf`.")
    print()
    header = ("N", "wall tokendrop", "wall baseline", "app tokendrop", "app baseline",
              "build+synth tokendrop", "build+synth baseline", "difference", "per token")
    print("| " + " | ".join(header) + " |")
    print("|" + "|".join("-" * (len(h) + 2) for h in header) + "|")
    for n, ours, base in rows:
        extra = ours.median("work") - base.median("work")
        per_token = f"{extra / n * 1000:+.2f} ms" if n > 1 else "(fixed cost)"
        print("| " + " | ".join([
            f"{n}", f"{ours.median('wall'):.2f}", f"{base.median('wall'):.2f}", f"{ours.median('app'):.2f}",
            f"{base.median('app'):.2f}", f"{ours.median('work'):.3f}", f"{base.median('work'):.3f}",
            f"{extra:+.3f}", per_token]) + " |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
