"""This checkout's provider against the one of an earlier commit, interleaved so that both see the same
machine load: launches from exec (bench/handshake.py) and the refresh plan of N tokens in 10 pools with
50 ms of issuer latency. Both run from this environment's interpreter and libraries, with the flags the
installed launcher uses (-I -S); the earlier provider's sources come from `git archive`.

Usage: python bench/before_after.py REV launch [runs]
       python bench/before_after.py REV plan [N] [runs]
"""

from __future__ import annotations

import json
import os
import resource
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import handshake
from common import sandbox, terraform
from scale import tokens_config

from tokendrop_provider.install import import_roots, install, provider_version, terraform_platform

CHECKOUT = Path(__file__).resolve().parent.parent


def earlier_provider(rev: str, root: Path) -> Path:
    """A launcher for the provider as it was at `rev` (its sources exported under `root`)."""
    sources = root / "before"
    sources.mkdir()
    archive = subprocess.run(["git", "-C", str(CHECKOUT), "archive", rev, "provider"], check=True,
                             capture_output=True).stdout
    subprocess.run(["tar", "-x", "-C", str(sources)], input=archive, check=True)
    roots = [str(sources / "provider"), *import_roots()[1:]]
    boot = (f"import sys\nsys.path.extend({json.dumps(roots)})\n"
            "from tokendrop_provider import lazy\nlazy.import_grpc_core()\n"
            "from tokendrop_provider.main import main\nsys.exit(main())\n")
    launcher = root / "before-provider"
    launcher.write_text(f"#!/bin/sh\nexec {shlex.quote(sys.executable)} -I -S -c {shlex.quote(boot)} \"$@\"\n")
    launcher.chmod(0o755)
    return launcher


def mirror_config(launcher: Path, root: Path) -> Path:
    """A CLI configuration whose filesystem mirror serves `launcher` as the tokendrop provider."""
    directory = root / "before-mirror" / "registry.terraform.io/tokendrop/tokendrop" / provider_version() \
        / terraform_platform()
    directory.mkdir(parents=True)
    shutil.copy(launcher, directory / f"terraform-provider-tokendrop_v{provider_version()}")
    config = root / "before.tfrc"
    config.write_text(install(root / "after-mirror").cli_config().replace(str(root / "after-mirror"),
                                                                          str(root / "before-mirror")))
    return config


def launches(before: Path, runs: int) -> None:
    samples: dict[str, dict[str, list[float]]] = {"before": {}, "after": {}}
    for _ in range(runs):
        for who, command in (("before", [str(before)]), ("after", handshake.provider_command())):
            for name, values in handshake.measure_launches(1, command).items():
                samples[who].setdefault(name, []).extend(values)
    for who, measured in samples.items():
        print(f"{who:>6}: " + ", ".join(f"{name} {statistics.median(v) * 1000:.0f} ms" for name, v in measured.items()))


def plans(before_config: Path, box, n: int, runs: int) -> None:  # type: ignore[no-untyped-def]
    box.tfe.set_latency(0.05)
    after_dir, before_dir = Path(tempfile.mkdtemp(dir=box.root)), Path(tempfile.mkdtemp(dir=box.root))
    (after_dir / "main.tf").write_text(tokens_config(n, 10))
    terraform(after_dir, box.env, "init", "-input=false")
    terraform(after_dir, box.env, "apply", "-auto-approve", "-input=false")
    for name in ("main.tf", "terraform.tfstate"):
        shutil.copy(after_dir / name, before_dir)
    before_env = {**box.env, "TF_CLI_CONFIG_FILE": str(before_config)}
    terraform(before_dir, before_env, "init", "-input=false")
    times: dict[str, list[float]] = {"before": [], "after": []}
    cpu: dict[str, list[float]] = {"before": [], "after": []}
    for _ in range(runs):
        for who, directory, env in (("before", before_dir, before_env), ("after", after_dir, box.env)):
            # CPU of the command's whole process tree (Terraform and its provider processes): steadier
            # than wall time on a shared machine. Children count once they have exited and been waited for.
            start = resource.getrusage(resource.RUSAGE_CHILDREN)
            times[who].append(terraform(directory, env, "plan", "-input=false", "-detailed-exitcode"))
            end = resource.getrusage(resource.RUSAGE_CHILDREN)
            cpu[who].append(end.ru_utime + end.ru_stime - start.ru_utime - start.ru_stime)
    for who, values in times.items():
        print(f"{who:>6}: plan of {n} tokens in 10 pools, median {statistics.median(values):.2f} s, "
              f"min {min(values):.2f} s over {runs}; CPU (Terraform and providers) median "
              f"{statistics.median(cpu[who]):.2f} s, min {min(cpu[who]):.2f} s")
    terraform(after_dir, box.env, "destroy", "-auto-approve", "-input=false")


def main() -> int:
    rev, mode, *numbers = sys.argv[1:]
    with sandbox() as box:
        before = earlier_provider(rev, box.root)
        if mode == "launch":
            launches(before, int(numbers[0]) if numbers else 10)
        else:
            n = int(numbers[0]) if numbers else 10
            plans(mirror_config(before, box.root), box, n, int(numbers[1]) if len(numbers) > 1 else 7)
    print(f"load average {os.getloadavg()[0]:.1f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
