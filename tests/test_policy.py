"""Fault policy without sockets: proxy/policy.py's verdict on each frame, and one name per
fault effect (faults/actions.py), old names still understood."""

from __future__ import annotations

from typing import Any

import pytest

from sentinel_ws_proxy.events import whole_frame
from sentinel_ws_proxy.faults.actions import ACTIONS, DELAY, DROP, STALL, Decision
from sentinel_ws_proxy.faults.spec import parse_spec
from sentinel_ws_proxy.protocol import effect_name
from sentinel_ws_proxy.proxy.frames import FrameHeader
from sentinel_ws_proxy.proxy.policy import (
    DISCARD,
    FORWARD,
    HOLD,
    REFUSED,
    FramePolicy,
)

NOW = 1000.0
OPCODES = {0: "continuation", 1: "text", 2: "binary", 8: "close"}


def header(opcode: int, length: int, *, fin: bool = True, compressed: bool = False, kept=b""):
    h = FrameHeader((0x80 if fin else 0) | opcode, 0x80, length, b"\0\0\0\0", NOW, 0, length)
    h.compressed = compressed
    h.kept += kept
    return h


def frame(opcode: int, payload: bytes, *, size: int | None = None):
    f = whole_frame(1, NOW, "c2s", OPCODES[opcode], payload)
    return f if size is None else f._replace(size=size)


class Faults:
    """The engine as the policy sees it: answers given in order, calls kept."""

    def __init__(self, *answers: tuple[Decision, int] | None, payload: bool = False):
        self.message_faults: list[Any] = [object()]
        self.answers = list(answers)
        self.payload = payload
        self.calls: list[tuple[str, bytes, int]] = []

    def matches_payload(self, direction: str) -> bool:
        return self.payload

    def on_frame(self, relay: Any, direction: str, payload: bytes, size: int):
        self.calls.append((direction, payload, size))
        return self.answers.pop(0) if self.answers else None


def test_no_rules_forward_at_once_but_never_before_the_previous_frame():
    policy = FramePolicy("c2s")
    assert policy.decide(header(1, 5), None, 0.0, NOW) == (FORWARD, None, NOW)
    assert policy.decide(header(1, 5), None, NOW + 2, NOW) == (FORWARD, None, NOW + 2)


def test_max_message_counts_a_message_across_its_fragments():
    policy = FramePolicy("c2s", max_message=1000)
    assert policy.decide(header(2, 1000), None, 0.0, NOW)[0] == FORWARD  # exactly the limit
    assert policy.decide(header(2, 1001), None, 0.0, NOW) == REFUSED
    assert policy.decide(header(1, 600, fin=False), None, 0.0, NOW)[0] == FORWARD
    policy.seen(frame(1, b"x" * 600))
    assert policy.decide(header(0, 400), None, 0.0, NOW)[0] == FORWARD
    assert policy.decide(header(0, 401), None, 0.0, NOW) == REFUSED
    assert policy.decide(header(9, 5000), None, 0.0, NOW)[0] == FORWARD  # control frames pass


def test_a_compressed_message_is_judged_inflated():
    policy = FramePolicy("s2c", max_message=1000)
    h = header(1, 40, compressed=True)
    assert policy.decide(h, None, 0.0, NOW)[0] == HOLD
    assert policy.decide(h, frame(1, b"", size=999), 0.0, NOW)[0] == FORWARD
    assert policy.decide(h, frame(1, b"", size=1001), 0.0, NOW) == REFUSED


def test_a_stall_discards_all_but_close_frames_until_lifted():
    policy = FramePolicy("s2c")
    policy.stall(4)
    assert policy.decide(header(1, 5), None, 0.0, NOW) == (DISCARD, (4, STALL), 0.0)
    assert policy.decide(header(8, 2), None, 0.0, NOW)[0] == FORWARD
    policy.unstall()
    assert policy.decide(header(1, 5), None, 0.0, NOW)[0] == FORWARD


def test_a_dropped_message_takes_its_later_fragments_with_it():
    faults = Faults((Decision(drop=True), 2), None)
    policy = FramePolicy("c2s", faults=faults, connection="relay")
    assert policy.decide(header(1, 3, fin=False), None, 0.0, NOW) == (DISCARD, (2, DROP), 0.0)
    assert policy.decide(header(0, 3), None, 0.0, NOW) == (DISCARD, (2, DROP), 0.0)
    assert policy.decide(header(1, 3), None, 0.0, NOW) == (FORWARD, None, NOW)  # a new message
    assert len(faults.calls) == 2  # the fragment was not asked about


def test_a_delay_holds_a_frame_until_its_release_time():
    faults = Faults((Decision(release_at=NOW + 0.2), 3), (Decision(release_at=NOW + 0.1), 3))
    policy = FramePolicy("s2c", faults=faults)
    assert policy.decide(header(1, 3), None, 0.0, NOW) == (FORWARD, (3, DELAY), NOW + 0.2)
    # Frames keep their order: a shorter delay waits behind the frame before it.
    verdict = policy.decide(header(1, 3), None, NOW + 0.2, NOW)
    assert verdict == (FORWARD, (3, DELAY), NOW + 0.2)


def test_a_match_fault_sees_the_whole_frame_first():
    faults = Faults((Decision(drop=True), 1), payload=True)
    policy = FramePolicy("c2s", faults=faults)
    h = header(1, 15, kept=b"the sec")
    assert policy.decide(h, None, 0.0, NOW)[0] == HOLD
    assert faults.calls == []
    verdict = policy.decide(h, frame(1, b"the secret plan"), 0.0, NOW)
    assert verdict == (DISCARD, (1, DROP), 0.0)
    assert faults.calls == [("c2s", b"the secret plan", 15)]


def test_message_faults_leave_close_frames_alone():
    faults = Faults((Decision(drop=True), 1))
    policy = FramePolicy("c2s", faults=faults)
    assert policy.decide(header(8, 2), None, 0.0, NOW)[0] == FORWARD
    assert faults.calls == []


def test_no_message_faults_means_no_question():
    faults = Faults((Decision(drop=True), 1))
    faults.message_faults.clear()
    assert FramePolicy("c2s", faults=faults).decide(header(1, 3), None, 0.0, NOW)[0] == FORWARD
    assert faults.calls == []


# -- one name per effect ----------------------------------------------------------------


def test_each_effect_has_one_name():
    assert (DROP, DELAY, STALL) == ("drop", "delay", "stall")
    assert {ACTIONS[n].name for n in (DROP, DELAY, STALL)} == {DROP, DELAY, STALL}
    assert Decision(drop=True).effect == DROP and Decision(release_at=1.0).effect == DELAY


@pytest.mark.parametrize("old", ["latency ms=200 jitter=50 dir=s2c", "LATENCY ms=200"])
def test_the_former_spec_word_still_parses(old):
    spec = parse_spec(old)
    assert spec.name == DELAY and spec.action.ms == 200
    assert spec.text == old  # kept as written, as the recording's faults.spec


def test_former_recorded_effects_are_understood():
    assert [effect_name(v) for v in ("dropped", "delayed", "stalled")] == [DROP, DELAY, STALL]
    assert [effect_name(v) for v in (DROP, DELAY, STALL, None)] == [DROP, DELAY, STALL, None]
