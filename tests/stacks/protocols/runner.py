"""Run every protocol scenario directly (client -> server) and, with --proxy, through
`sentinel-ws proxy`, and print what was on the wire and what the recording says.

    python -m tests.stacks.protocols.runner                    # direct only
    python -m tests.stacks.protocols.runner --proxy            # and through the proxy
    python -m tests.stacks.protocols.runner --proxy --only graphql-ws:ok --only socketio
    python -m tests.stacks.protocols.runner --proxy --json /tmp/report.json

The proxy runs as `PYTHON -c "from sentinel_ws_proxy.cli import main; main()" proxy ...` with
PYTHON = --python (default: this interpreter) and PYTHONPATH = --pythonpath if given (e.g. an
exported snapshot of the package: `git archive HEAD sentinel_ws_proxy | tar -x -C DIR`), run
from the scratch folder so that the current directory does not shadow it; one proxy and one
recording per scenario.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from tests.stacks.protocols import SCENARIOS, run_client, server_events, start_server, stop, ws_url

#: (stack, server args, client args, label)
VARIANTS = [
    ("graphql-ws", (), (), "graphql-ws"),
    ("socketio", ("--parser", "json"), ("--parser", "json"), "socketio-json"),
    ("socketio", ("--parser", "msgpack"), ("--parser", "msgpack"), "socketio-msgpack"),
    ("signalr", (), (), "signalr"),
    ("phoenix", (), (), "phoenix"),
    ("actioncable", (), (), "actioncable"),
]


class Proxy:
    def __init__(self, python: str, pythonpath: str | None, upstream_port: int, db: Path):
        self.python, self.db = python, db
        self.env = dict(os.environ)
        if pythonpath:
            self.env["PYTHONPATH"] = pythonpath
        self.out = db.with_suffix(".proxy.out")
        with open(self.out, "wb") as out:
            self.process = subprocess.Popen(
                [*self.cli(), "proxy", "--listen", "127.0.0.1:0",
                 "--upstream", f"http://127.0.0.1:{upstream_port}", "--db", str(db)],
                stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                env=self.env, cwd=self.db.parent,
            )  # fmt: skip
        deadline = time.monotonic() + 20
        while True:
            match = re.search(r"listening on\s+http://127\.0\.0\.1:(\d+)", self.out.read_text())
            if match:
                self.port = int(match.group(1))
                return
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.process.kill()
                raise RuntimeError("proxy did not start:\n" + self.out.read_text()[-3000:])
            time.sleep(0.05)

    def cli(self) -> list[str]:
        return [self.python, "-c", "from sentinel_ws_proxy.cli import main; main()"]

    def stop(self) -> None:
        self.process.send_signal(signal.SIGINT)
        try:
            self.process.wait(15)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()

    def sql(self, query: str) -> list[dict]:
        out = subprocess.run(
            [*self.cli(), "sql", "--db", str(self.db), query, "--nl"],
            capture_output=True, text=True, env=self.env, cwd=self.db.parent, timeout=60,
        )  # fmt: skip
        if out.returncode != 0:
            raise RuntimeError(out.stderr)
        return [json.loads(line) for line in out.stdout.splitlines() if line.strip()]

    def show(self, session_id: int) -> dict | None:
        out = subprocess.run(
            [*self.cli(), "show", str(session_id), "--db", str(self.db), "--json"],
            capture_output=True, text=True, env=self.env, cwd=self.db.parent, timeout=60,
        )  # fmt: skip
        try:
            return json.loads(out.stdout)
        except ValueError:
            return {"error": (out.stdout + out.stderr)[-500:]}


def payload_text(frame: dict) -> str:
    payload = frame.get("payload")
    if isinstance(payload, dict) and "$base64" in payload:
        import base64

        raw = base64.b64decode(payload["$base64"])
        try:
            text = raw.decode()
            if text.isprintable() or "\x1e" in text:
                return text
        except UnicodeDecodeError:
            pass
        return "hex:" + raw.hex()
    return "" if payload is None else str(payload)


def wire_line(w: dict) -> str:
    op = w["op"]
    if op in ("text",):
        return f"{w['dir']:>3} text {w['data'][:110]!r}"
    if op == "binary":
        return f"{w['dir']:>3} binary {w['len']}B {w['hex'][:60]}"
    if op == "close":
        return f"{w['dir']:>3} close code={w['code']} reason={w['reason']!r}" + (
            " (echo)" if w.get("echo") else ""
        )
    return f"{w['dir']:>3} {op} " + " ".join(
        f"{k}={v}" for k, v in w.items() if k not in ("t", "dir", "op")
    )


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--proxy", action="store_true", help="also run each scenario through sentinel-ws proxy"
    )
    parser.add_argument(
        "--only", action="append", default=[], help="LABEL or LABEL:SCENARIO (repeatable)"
    )
    parser.add_argument(
        "--python", default=sys.executable, help="interpreter that has sentinel_ws_proxy"
    )
    parser.add_argument(
        "--pythonpath", default=None, help="PYTHONPATH for the proxy (a package snapshot)"
    )
    parser.add_argument("--json", dest="json_out", default=None, help="write the full report here")
    parser.add_argument("--quiet", action="store_true", help="one line per scenario")
    args = parser.parse_args()

    wanted = [tuple(o.split(":", 1)) if ":" in o else (o, None) for o in args.only]
    work = Path(tempfile.mkdtemp(prefix="proto-runner-"))
    report, failures = [], 0
    for stack, server_args, client_args, label in VARIANTS:
        scenarios = [
            s for s in SCENARIOS[stack]
            if not wanted or any(w[0] == label and w[1] in (None, s) for w in wanted)
        ]  # fmt: skip
        if not scenarios:
            continue
        process, port = start_server(stack, *server_args, log_dir=work)
        try:
            for scenario in scenarios:
                entry = {"stack": label, "scenario": scenario}
                started = time.monotonic()
                try:
                    direct = run_client(stack, scenario, ws_url(stack, port), *client_args)
                    entry["direct"] = direct
                except Exception as exc:
                    entry["direct_error"] = str(exc)
                    failures += 1
                entry["direct_seconds"] = round(time.monotonic() - started, 2)
                if args.proxy:
                    db = work / f"{label}-{scenario}.db"
                    proxy = Proxy(args.python, args.pythonpath, port, db)
                    try:
                        entry["proxied"] = run_client(
                            stack, scenario, ws_url(stack, proxy.port), *client_args
                        )
                    except Exception as exc:
                        entry["proxied_error"] = str(exc)
                        failures += 1
                    finally:
                        proxy.stop()
                    entry["sessions"] = proxy.sql(
                        "select id, path, query, subprotocol, handshake_status, close_code,"
                        " close_reason,"
                        " closed_by, clean, frames_c2s, frames_s2c, error from sessions order by id"
                    )
                    entry["frames"] = proxy.sql(
                        "select session_id, direction, opcode, size, close_code, close_reason,"
                        " payload"
                        " from frames order by id"
                    )
                    entry["show"] = [proxy.show(s["id"]) for s in entry["sessions"]]
                report.append(entry)
                print_entry(entry, args.quiet)
        finally:
            stop(process)
            events = server_events(process)
            for entry in report:
                if entry["stack"] == label:
                    entry.setdefault("server_events", events)
    if args.json_out:
        Path(args.json_out).write_text(json.dumps(report, indent=1))
    print(f"\n{len(report)} scenario runs, {failures} harness failures; files in {work}")
    return 1 if failures else 0


def print_entry(entry: dict, quiet: bool) -> None:
    head = f"== {entry['stack']} {entry['scenario']}"
    direct = entry.get("direct")
    if direct:
        c = direct["closed"] or {}
        head += (
            f"  direct: close {c.get('code')} {c.get('reason')!r} by {c.get('initiator')}"
            f" ({entry['direct_seconds']} s)"
        )
    else:
        head += f"  direct FAILED: {entry.get('direct_error', '')[:300]}"
    if "proxied_error" in entry:
        head += f"  proxied FAILED: {entry['proxied_error'][:300]}"
    for s in entry.get("sessions", []):
        head += (
            f"\n   recorded session {s['id']}: status {s['handshake_status']}"
            f" subprotocol {s['subprotocol']!r} close {s['close_code']} {s['close_reason']!r}"
            f" closed_by {s['closed_by']} clean {s['clean']}"
        )
    print(head)
    if quiet:
        return
    if direct:
        for conn in direct["connections"]:
            for w in conn["wire"]:
                print("     client saw:", wire_line(w))
    for f in entry.get("frames", []):
        extra = (
            f" code={f['close_code']} reason={f['close_reason']!r}"
            if f["opcode"] in ("close", 8, "8")
            else ""
        )
        print(
            f"     recorded: {f['direction']} {f['opcode']} {f['size']}B{extra}"
            f" {payload_text(f)[:100]!r}"
        )


if __name__ == "__main__":
    sys.exit(main())
