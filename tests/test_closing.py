"""The close handshake without sockets: what proxy/closing.py answers to what the relay saw."""

from __future__ import annotations

from sentinel_ws_proxy.proxy.closing import (
    CLIENT,
    CLOSE_NOW,
    FINISH,
    SERVER,
    START_TIMER,
    WAIT,
    WRITE_EOF,
    Abort,
    Close,
    Closing,
    End,
    Outcome,
    PassEof,
    SendClose,
)


def test_client_closes_first_and_the_server_answers():
    c = Closing()
    assert c.close_frame(CLIENT, 1000, "bye", forwarded=True) == [START_TIMER]
    assert c.close_frame(SERVER, 1000, "bye", forwarded=True) == []  # relayed, not the proxy's
    # The server ends TCP first (RFC 6455 7.1.1); its EOF goes on to the client.
    assert c.eof(SERVER) == [PassEof(CLIENT)]
    assert c.eof_to(CLIENT, can_write_eof=True) == WRITE_EOF
    assert c.eof(CLIENT) == [PassEof(SERVER), Close(CLIENT), Close(SERVER)]
    assert c.connection_lost(SERVER) == [End(CLIENT)]  # the timer already runs
    assert c.connection_lost(CLIENT) == [FINISH]
    assert c.finish() == Outcome(1000, "bye", "client", True, None)


def test_the_first_close_decides_who_closed():
    c = Closing()
    c.close_frame(SERVER, 1012, "restart", forwarded=True)
    c.close_frame(CLIENT, 1000, "", forwarded=True)
    assert c.finish()[:3] == (1012, "restart", "server")


def test_a_close_not_passed_on_is_not_clean():
    c = Closing()
    c.close_frame(CLIENT, 1000, "", forwarded=True)
    c.close_frame(SERVER, 1000, "", forwarded=False)  # the client was gone
    assert c.finish().clean is False


def test_tcp_ending_before_any_close_frame_is_1006_from_that_side():
    c = Closing()
    assert c.eof(CLIENT) == [START_TIMER, PassEof(SERVER)]
    assert c.finish() == Outcome(1006, "", "client", False, None)


def test_a_lost_connection_ends_the_other_and_starts_the_timer():
    c = Closing()
    assert c.connection_lost(SERVER) == [End(CLIENT), START_TIMER]
    assert c.eof_to(CLIENT, can_write_eof=True) == CLOSE_NOW  # its source is gone: no half-close
    assert c.connection_lost(CLIENT) == [FINISH]
    assert c.finish()[:3] == (1006, "", "server")


def test_the_proxy_closes_both_sides_and_ends_tcp_once_both_answered():
    c = Closing()
    closes = ((CLIENT, 1011, "boom"), (SERVER, 1001, "sentinel-ws fault"))
    assert c.proxy_close(1011, "boom", closes, fault_id=7) == [
        START_TIMER,
        SendClose(CLIENT, 1011, "boom"),
        SendClose(SERVER, 1001, "sentinel-ws fault"),
    ]
    c.close_sent(CLIENT)
    c.close_sent(SERVER)
    # An answer's arrival is not the proxy's cue to close before the other answers...
    assert c.close_frame(CLIENT, 1011, "boom", forwarded=False) == []
    # ...and an EOF from the server waits while the proxy's close to it is unanswered.
    assert c.eof_to(SERVER, can_write_eof=True) == WAIT
    assert c.eof_to(CLIENT, can_write_eof=True) == CLOSE_NOW  # answered: the proxy closes
    assert c.close_frame(SERVER, 1001, "", forwarded=False) == [End(CLIENT), End(SERVER)]
    assert c.finish() == Outcome(1011, "boom", "proxy", True, 7)


def test_a_proxy_close_after_the_client_closed_keeps_the_client_as_closer():
    c = Closing()
    c.close_frame(CLIENT, 1001, "", forwarded=True)
    actions = c.proxy_close(1001, "shutdown", ((CLIENT, 1001, "shutdown"),), fault_id=3)
    assert actions == [SendClose(CLIENT, 1001, "shutdown")]  # no second timer
    assert c.finish()[2:] == ("client", False, None)  # nor the fault's id


def test_abort_cuts_both_and_records_the_fault_once():
    c = Closing()
    assert c.abort(4) == [Abort(CLIENT), Abort(SERVER)]
    assert c.abort(5) == [Abort(CLIENT), Abort(SERVER)]
    c.connection_lost(CLIENT)
    c.connection_lost(SERVER)
    assert c.finish() == Outcome(1006, "", "proxy", False, 4)
    assert c.abort(6) == []  # finished: nothing left to cut


def test_the_timer_aborts_what_is_still_connected():
    c = Closing()
    c.close_frame(CLIENT, 1000, "", forwarded=True)  # the timer starts
    assert c.connection_lost(CLIENT) == [End(SERVER)]
    assert c.timer_fired() == [Abort(SERVER)]
    assert c.connection_lost(SERVER) == [FINISH]
    assert c.finish().closed_by == "client"


def test_the_timer_starts_again_after_firing_but_not_after_finishing():
    c = Closing()
    assert c.eof(CLIENT) == [START_TIMER, PassEof(SERVER)]
    assert c.timer_fired() == [Abort(CLIENT), Abort(SERVER)]
    assert c.connection_lost(CLIENT) == [End(SERVER), START_TIMER]
    c.finish()
    assert c.eof(SERVER) == [PassEof(CLIENT), Close(CLIENT), Close(SERVER)]


def test_nothing_seen_is_recorded_as_the_proxy_dropping_it():
    assert Closing().finish() == Outcome(1006, "", "proxy", False, None)


def test_half_close_only_where_the_transport_can():
    c = Closing()
    c.eof(CLIENT)
    assert c.eof_to(SERVER, can_write_eof=False) == CLOSE_NOW
    assert c.eof_to(SERVER, can_write_eof=True) == WRITE_EOF
