"""`sentinel-ws decoders` and the group's --decoder option (issue 20): list the decoders,
load a user's own, and see `show` read a session with it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from sentinel_ws_proxy.cli import cli
from sentinel_ws_proxy.decoders import DECODERS
from sentinel_ws_proxy.events import SessionClosed, SessionOpened, whole_frame
from sentinel_ws_proxy.recording.redact import Redactor
from sentinel_ws_proxy.recording.writer import RecordingWriter

T0 = 1_800_000_000.0
ROOT = Path(__file__).resolve().parent.parent

# A decoder of a made-up protocol: "tiny.v1" messages are "VERB payload".
TINY = '''"""Tiny, a protocol made up for this test: VERB then its argument.

More about it here, left out of the listing."""

from sentinel_ws_proxy.decoders.base import Decoded

NAME = "tiny"
SUBPROTOCOLS = ("tiny.v1",)


def sniff(path, query, first):
    return path == "/tiny"


def decode(payload, direction):
    text = payload if isinstance(payload, str) else payload.decode("utf-8", "replace")
    verb, _, rest = text.partition(" ")
    return Decoded("tiny", verb, f"tiny {verb.lower()} of {rest}", {"arg": rest})
'''


def run(*args: str, env: dict[str, str] | None = None, cwd: Path = ROOT):
    """The command in its own process: a decoder loaded there stays out of this one's list."""
    return subprocess.run(
        [sys.executable, "-m", "sentinel_ws_proxy", *args],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=cwd,
        env={**os.environ, **(env or {})},
    )


@pytest.fixture
def tiny(tmp_path: Path) -> Path:
    """A folder holding the tiny decoder module, to put on PYTHONPATH."""
    folder = tmp_path / "mods"
    folder.mkdir()
    (folder / "tiny_decoder.py").write_text(TINY)
    return folder


@pytest.fixture
def recording(tmp_path: Path) -> Path:
    """One session that negotiated tiny.v1, with a message each way."""
    db = tmp_path / "tiny.db"
    w = RecordingWriter(db, redactor=Redactor(), max_payload=1024, listen="t", upstream="u")
    w.open()
    w.handle(
        SessionOpened(1, T0, "127.0.0.1", "/app", "", "ws://u/app", (), 101, subprotocol="tiny.v1")
    )
    w.handle(whole_frame(1, T0 + 1, "c2s", "text", b"HELLO world"))
    w.handle(whole_frame(1, T0 + 2, "s2c", "text", b"WELCOME friend"))
    w.handle(SessionClosed(1, T0 + 3, 1000, "", "client", True, 1, 1))
    assert w.close().dropped == 0
    return db


def test_decoders_lists_every_builtin_in_the_order_they_are_tried():
    result = CliRunner().invoke(cli, ["decoders", "--json"])
    assert result.exit_code == 0, result.output
    listed = json.loads(result.output)
    assert [d["name"] for d in listed] == [d.NAME for d in DECODERS]
    graphql = next(d for d in listed if d["name"] == "graphql-ws")
    assert graphql["subprotocols"] == ["graphql-transport-ws"]
    assert graphql["module"] == "sentinel_ws_proxy.decoders.graphql_transport_ws"
    assert graphql["close_code"] is True and graphql["redact"] is True
    assert graphql["about"].startswith("GraphQL over WebSocket")
    json_ = next(d for d in listed if d["name"] == "json")
    assert json_["close_code"] is False and json_["redact"] is False


def test_decoders_table_names_each_decoder():
    result = CliRunner().invoke(cli, ["decoders"])
    assert result.exit_code == 0, result.output
    for decoder in DECODERS:
        assert decoder.NAME in result.output
    assert "graphql-transport-ws" in result.output


def test_a_decoder_given_with_the_option_comes_first_in_the_list(tiny):
    done = run("--decoder", "tiny_decoder", "decoders", "--json", env={"PYTHONPATH": str(tiny)})
    assert done.returncode == 0, done.stderr
    first = json.loads(done.stdout)[0]
    assert first == {
        "name": "tiny",
        "module": "tiny_decoder",
        "subprotocols": ["tiny.v1"],
        "redact": False,
        "close_code": False,
        "about": "Tiny, a protocol made up for this test: VERB then its argument.",
    }


def test_show_decodes_with_a_loaded_decoder(tiny, recording):
    before = run("show", "1", "--db", str(recording))
    assert before.returncode == 0, before.stderr
    assert "tiny hello of world" not in before.stdout
    env = {"PYTHONPATH": str(tiny)}
    shown = run("--decoder", "tiny_decoder", "show", "1", "--db", str(recording), env=env)
    assert shown.returncode == 0, shown.stderr
    assert "tiny hello of world" in shown.stdout
    assert "tiny welcome of friend" in shown.stdout
    as_json = run(
        "--decoder", "tiny_decoder", "show", "1", "--db", str(recording), "--json", env=env
    )
    decoded = [m["decoded"] for m in json.loads(as_json.stdout)["messages"]]
    assert decoded[0] == {
        "protocol": "tiny", "kind": "HELLO", "summary": "tiny hello of world", "arg": "world",
    }  # fmt: skip


def test_the_environment_variable_takes_a_list(tiny, recording):
    env = {
        "PYTHONPATH": str(tiny),
        "SENTINEL_WS_DECODERS": "tiny_decoder,sentinel_ws_proxy.decoders.json_",
    }
    done = run("decoders", "--json", env=env)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)[0]["name"] == "tiny"
    shown = run("show", "1", "--db", str(recording), env=env)
    assert "tiny hello of world" in shown.stdout


def test_a_module_in_the_current_folder_loads_without_pythonpath(tiny, recording):
    """As the installed `sentinel-ws` script runs, whose sys.path lacks the current folder."""
    script = Path(sys.executable).parent / "sentinel-ws"
    if not script.exists():
        pytest.skip("the sentinel-ws script is not installed beside this Python")
    done = subprocess.run(
        [str(script), "--decoder", "tiny_decoder", "show", "1", "--db", str(recording)],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tiny,
    )
    assert done.returncode == 0, done.stderr
    assert "tiny hello of world" in done.stdout


@pytest.mark.parametrize(
    "module,message",
    [
        ("no_such_decoder_module", "cannot load decoder 'no_such_decoder_module'"),
        ("json", "'json' is not a decoder: it lacks NAME, sniff, decode"),
    ],
)
def test_a_bad_decoder_is_a_one_line_error_and_status_2(module, message):
    result = CliRunner().invoke(cli, ["--decoder", module, "decoders"])
    assert result.exit_code == 2
    assert message in result.output
    assert "Traceback" not in result.output
    assert len(result.output.strip().splitlines()) == 1


def test_a_decoder_that_fails_to_import_says_why(tmp_path):
    (tmp_path / "broken_decoder.py").write_text("raise RuntimeError('half written')\n")
    done = run("--decoder", "broken_decoder", "decoders", env={"PYTHONPATH": str(tmp_path)})
    assert done.returncode == 2
    assert done.stderr.strip() == (
        "sentinel-ws: error: cannot load decoder 'broken_decoder': half written"
    )
