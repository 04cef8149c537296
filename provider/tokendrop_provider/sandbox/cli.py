"""`tokendrop sandbox`: local emulators and servers for trying tokendrop without real accounts.

    tokendrop sandbox up [--detach] [--env]   start moto (SSM), OpenBao (Vault) and the issuer emulators
    tokendrop sandbox env                     export lines of the running sandbox
    tokendrop sandbox status                  what runs and whether it answers
    tokendrop sandbox down                    stop every server by its pid, remove the state file

All take `--state-dir` (default: $TOKENDROP_SANDBOX_DIR, else ./.tokendrop).
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from pathlib import Path

from . import runner
from .runner import (
    GONE,
    REUSED,
    RUNNING,
    Sandbox,
    SandboxError,
    SandboxState,
    StartFailed,
)
from .servers import log_tail

# Exit code of `status` / `env` when no sandbox runs (as LSB init scripts' "program is not running").
NOT_RUNNING = 3


def add_commands(commands: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    sandbox = commands.add_parser(
        "sandbox", help="run the local sandbox (emulated TFE, moto SSM, OpenBao)",
        description="Local emulators of the issuer APIs plus moto (SSM) and OpenBao (Vault), on 127.0.0.1.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog='Typical use:  eval "$(tokendrop sandbox up --detach --env)"  ...  tokendrop sandbox down')
    sandbox.set_defaults(handler=lambda args: sandbox.print_help() or 2)
    sub = sandbox.add_subparsers(dest="sandbox_command")

    def state_dir_option(parser: argparse.ArgumentParser) -> None:
        parser.add_argument("--state-dir", help="where the state file and logs live (default: "
                            f"${runner.STATE_DIR_ENV}, else ./{runner.DEFAULT_STATE_DIR})")

    up = sub.add_parser("up", help="start the sandbox (foreground until Ctrl-C, or --detach)")
    state_dir_option(up)
    up.add_argument("--detach", action="store_true", help="return once everything is ready; stop it later "
                    "with `tokendrop sandbox down`")
    up.add_argument("--env", action="store_true", help="print only `export K=V` lines (for eval; needs --detach)")
    up.add_argument("--timeout", type=float, default=runner.START_TIMEOUT,
                    help="seconds each server may take to become ready (default: %(default)s)")
    up.set_defaults(handler=_up)

    env = sub.add_parser("env", help="print the export lines of the running sandbox")
    state_dir_option(env)
    env.set_defaults(handler=_env)

    status = sub.add_parser("status", help="show what runs and whether it is healthy")
    state_dir_option(status)
    status.set_defaults(handler=_status)

    down = sub.add_parser("down", help="stop the sandbox (idempotent)")
    state_dir_option(down)
    down.add_argument("--timeout", type=float, default=runner.STOP_TIMEOUT,
                      help="seconds to wait after SIGTERM before SIGKILL (default: %(default)s)")
    down.set_defaults(handler=_down)


def _err(message: str) -> None:
    print(message, file=sys.stderr)


def _dir_hint(state_dir: Path) -> str:
    """The --state-dir flag a follow-up command needs, if any."""
    if state_dir == runner.resolve_state_dir():
        return ""
    return f" --state-dir {state_dir}"


# --- up ----------------------------------------------------------------------------------------------


def _up(args: argparse.Namespace) -> int:
    if args.env and not args.detach:
        raise SandboxError("--env needs --detach", 'eval "$(tokendrop sandbox up --env)" would wait forever '
                           "for the foreground sandbox to stop")
    state_dir = runner.resolve_state_dir(args.state_dir)
    sandbox = Sandbox(state_dir, timeout=args.timeout)
    with runner.locked(state_dir):
        existing = runner.load_state(state_dir)
        if existing is not None:
            if runner.is_live(existing):
                raise SandboxError(f"a sandbox is already running in {state_dir} (started {existing.started_at})",
                                   f"use it (`tokendrop sandbox env{_dir_hint(state_dir)}`) or stop it "
                                   f"(`tokendrop sandbox down{_dir_hint(state_dir)}`)")
            runner.remove_state(state_dir)
            _err(f"Removed a stale state file from {state_dir} (none of its servers is running).")
        try:
            with runner.interruptible():
                sandbox.start()
                state = SandboxState(str(state_dir), "detached" if args.detach else "foreground", runner.utc_now(),
                                     sandbox.records, None if args.detach else runner.self_identity())
                runner.write_state(state)
        except StartFailed as exc:
            _report_start_failure(exc)
            return 1
        except BaseException:
            sandbox.stop()  # e.g. Ctrl-C while writing the state file
            runner.remove_state(state_dir)
            raise
        if args.detach:
            sandbox.detach()
    if args.detach:
        print("\n".join(runner.export_lines(state.env) if args.env else _summary(state)))
        return 0
    try:
        return _supervise(sandbox, state)
    except BaseException:
        _stop_foreground(sandbox, state)  # e.g. Ctrl-C before the supervisor's handlers were in place
        raise


def _report_start_failure(exc: StartFailed) -> None:
    _err(f"tokendrop sandbox: {exc.name} failed to start: {exc.reason}")
    if exc.started_before:
        _err(f"Stopped the servers already started: {', '.join(exc.started_before)}.")
    if exc.log:
        _err(f"Last lines of {exc.log}:")
        _err("\n".join("    " + line for line in log_tail(exc.log).splitlines()))


def _summary(state: SandboxState) -> list[str]:
    state_dir = Path(state.state_dir)
    width = max(len(p.name) for p in state.processes)
    url_width = max(len(p.url) for p in state.processes)
    lines = [f"Sandbox up ({state.mode}); state in {runner.state_path(state_dir)}, logs in {state_dir / 'logs'}/"]
    lines += [f"  {p.name:<{width}}  {p.url:<{url_width}}  pid {p.pid:<7}  {p.title}" for p in state.processes]
    lines += ["", "Environment for the provider, boto3/aws-cli and the vault CLI "
              f'(eval "$(tokendrop sandbox env{_dir_hint(state_dir)})"):']
    lines += ["  " + line for line in runner.export_lines(state.env)]
    lines.append("")
    if state.mode == "detached":
        lines.append(f"Stop it with: tokendrop sandbox down{_dir_hint(state_dir)}")
    else:
        lines.append(f"Press Ctrl-C to stop (or run `tokendrop sandbox down{_dir_hint(state_dir)}` elsewhere).")
    return lines


def _supervise(sandbox: Sandbox, state: SandboxState) -> int:
    """Foreground: print the summary, then wait for Ctrl-C / SIGTERM / SIGHUP (0) or for a server to die (1)."""
    stop = threading.Event()

    def on_signal(signum: int, frame: object) -> None:
        stop.set()

    previous = {s: signal.signal(s, on_signal) for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)}
    try:
        print("\n".join(_summary(state)), flush=True)
        while not stop.wait(0.5):
            dead = sandbox.exited()
            if dead:
                for record, exit_code in dead:
                    _err(f"{record.name} exited unexpectedly (exit code {exit_code}); last lines of {record.log}:")
                    _err("\n".join("    " + line for line in log_tail(record.log).splitlines()))
                return 1
        return 0
    finally:
        _stop_foreground(sandbox, state)  # still under our handlers: a second Ctrl-C cannot cut it short
        for s, handler in previous.items():
            signal.signal(s, handler)


def _stop_foreground(sandbox: Sandbox, state: SandboxState) -> None:
    if not sandbox.started:
        return
    print("\nStopping the sandbox…", flush=True)
    sandbox.stop()
    current = _load_quietly(Path(state.state_dir))
    if current is not None and current.supervisor == state.supervisor:  # not a newer sandbox's file
        runner.remove_state(Path(state.state_dir))
    print("Sandbox stopped.")


def _load_quietly(state_dir: Path) -> SandboxState | None:
    try:
        return runner.load_state(state_dir)
    except SandboxError:
        return None


# --- env, status, down ---------------------------------------------------------------------------------


def _env(args: argparse.Namespace) -> int:
    state_dir = runner.resolve_state_dir(args.state_dir)
    state = runner.load_state(state_dir)
    if state is None:
        _err(f"No sandbox is running in {state_dir}. Start one with: "
             f'eval "$(tokendrop sandbox up --detach --env{_dir_hint(state_dir)})"')
        return NOT_RUNNING
    described = runner.describe_state(state)
    down = [r.name for r, st, _ in described if st != RUNNING]
    if len(down) == len(described):
        _err(f"The sandbox in {state_dir} is no longer running (stale state file); "
             f"`tokendrop sandbox down{_dir_hint(state_dir)}` cleans up.")
        return NOT_RUNNING
    if down:
        _err(f"warning: not running: {', '.join(down)} (see `tokendrop sandbox status{_dir_hint(state_dir)}`)")
    print("\n".join(runner.export_lines(state.env)))
    return 0


def _status(args: argparse.Namespace) -> int:
    state_dir = runner.resolve_state_dir(args.state_dir)
    state = runner.load_state(state_dir)
    if state is None:
        print(f"No sandbox is running in {state_dir}.")
        return NOT_RUNNING
    described = runner.describe_state(state)
    print(f"Sandbox in {state_dir} ({state.mode}, started {state.started_at})")
    sup = state.supervisor_state()
    if state.supervisor is not None:
        print(f"  supervisor (`tokendrop sandbox up`) pid {state.supervisor['pid']}: "
              f"{'running' if sup == RUNNING else 'not running'}")
    width = max(len(r.name) for r, _, _ in described)
    url_width = max(len(r.url) for r, _, _ in described)
    for record, st, healthy in described:
        verdict = ("healthy" if healthy else "running but not answering" if st == RUNNING
                   else "not running (exited)" if st == GONE
                   else "not running (its pid now belongs to another process)")
        print(f"  {record.name:<{width}}  {record.url:<{url_width}}  pid {record.pid:<7}  {verdict}")
    bad = [r.name for r, _, healthy in described if not healthy]
    if not bad:
        print(f"All {len(described)} servers healthy.")
        return 0
    if len(bad) == len(described):
        print(f"Nothing runs any more; `tokendrop sandbox down{_dir_hint(state_dir)}` removes the stale state.")
        return NOT_RUNNING
    print(f"{len(bad)} of {len(described)} not healthy; logs in {state_dir / 'logs'}/")
    return 1


def _down(args: argparse.Namespace) -> int:
    state_dir = runner.resolve_state_dir(args.state_dir)
    if not runner.state_path(state_dir).exists():
        print(f"No sandbox is running in {state_dir}; nothing to stop.")
        return 0
    with runner.locked(state_dir):
        state = runner.load_state(state_dir)
        if state is None:  # a foreground sandbox stopped meanwhile
            print(f"No sandbox is running in {state_dir}; nothing to stop.")
            return 0
        report = runner.stop_recorded(state, args.timeout)
        runner.remove_state(state_dir)
    outcome_text = {"stopped": "stopped", "killed": "killed (did not stop within the timeout)",
                    GONE: "already gone", REUSED: "left alone: its pid now belongs to another process"}
    for name, pid, outcome in report.results:
        print(f"  {name} (pid {pid}): {outcome_text.get(outcome, outcome)}")
    print(f"Sandbox stopped; removed {runner.state_path(state_dir)}.")
    return 0

