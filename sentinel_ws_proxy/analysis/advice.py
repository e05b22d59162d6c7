"""What each category usually means and what to try, after the Sentinel troubleshooting guide."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Advice:
    title: str
    causes: tuple[str, ...]
    fixes: tuple[str, ...]


ADVICE: dict[str, Advice] = {
    "rejected": Advice(
        "Handshake refused (401/403) or closed for a policy violation (1008)",
        (
            "Authentication: the cookie or token the server expects is missing or expired.",
            "CORS/Origin: the server does not allow the page's Origin header.",
            "Wrong path: some servers answer 403 rather than 404 for an unknown WebSocket path.",
        ),
        (
            "Compare the recorded request headers (sentinel-ws show ID) with what the server "
            "expects: Cookie/Authorization, and Origin against its allowed origins.",
            "Check the server's CORS/Origin configuration for WebSocket routes.",
            "Confirm the WebSocket path the frontend uses is the one the server serves.",
        ),
    ),
    "navigation": Advice(
        "Page navigations (expected: the browser closes the page's socket, the next page "
        "opens one)",
        (
            "Browser page navigation destroys the page's WebSocket (close 1001, or a bare drop).",
            "The connection lives in a page or component that does not survive navigation.",
        ),
        (
            "Keep robust reconnection logic in the frontend (backoff, resubscribe on reconnect).",
            "Store connection state in a service that survives page navigation (a shared "
            "worker, or an app-level singleton in a single-page app).",
            "Make the server tolerate brief gaps: missed events should be resent or refetched.",
        ),
    ),
    "client_gone": Advice(
        "Clients that left and did not come back (expected when a tab was closed)",
        (
            "The tab was closed or killed, the laptop slept, or the network went away.",
            "Missing reconnection logic in the frontend.",
        ),
        (
            "Implement reconnection with backoff in the frontend and check it runs after 1001 "
            "and after a drop without a close frame (1006): sentinel-ws fault close/abort "
            "proves it.",
            "Have the server remove the connection from its connection manager at once, so it "
            "does not keep sending to a dead socket.",
        ),
    ),
    "client_unresponsive": Advice(
        "The client stopped answering: the server's pings went unanswered",
        (
            "The browser's tab or network process froze (a long-running script, a debugger "
            "pause, a sleeping laptop, a congested network), so pongs stopped coming back.",
            "The server's ping timeout is shorter than the pauses your users have.",
        ),
        (
            "Look for long tasks on the page (DevTools Performance panel) that block the "
            "event loop, and move heavy work off the main thread.",
            "Give the server's keepalive a timeout longer than such pauses (daphne "
            "--ping-timeout, uvicorn --ws-ping-timeout), and let the client reconnect.",
        ),
    ),
    "server_restart": Advice(
        "The server went away or restarted (1001/1012/1013, or a drop then 502s)",
        (
            "A deploy, a crash with a supervisor restarting the process, or a scale-down.",
            "The server closing its sockets on shutdown (uvicorn sends 1012, others 1001).",
        ),
        (
            "Read the recovery report: how long each client took to come back, and whether "
            "its retries backed off instead of hammering the server while it was down.",
            "Reconnect with exponential backoff and jitter; resubscribe and refetch state "
            "after reconnecting, since events sent during the outage were lost.",
        ),
    ),
    "server_drop": Advice(
        "Server side vanished without a close frame",
        (
            "The server process crashed or restarted, or a load balancer cut the connection.",
            "Stale connections: the server's connection manager holds sockets it no longer "
            "serves, so sends fail ('failed to send event').",
        ),
        (
            "Check server logs at the recorded time for crashes or restarts.",
            "Check that the server's connection manager removes a connection when a send "
            "to it fails, instead of keeping a stale one (sentinel-ws health --fix tries its "
            "WebSocket restart endpoint).",
            "Validate connection state before sending and prune closed connections.",
        ),
    ),
    "server_error": Advice(
        "Server error (close 1011 or a 5xx handshake)",
        ("An exception in the server's WebSocket handler or its upstream dependencies.",),
        (
            "Check server logs for the traceback at the recorded time.",
            "Look at the frames just before the close (sentinel-ws show ID --payloads) for "
            "the message that set it off; reproduce it with sentinel-ws test --db PATH "
            "--session ID against a test server, or offline with sentinel-ws replay.",
        ),
    ),
    "not_found": Advice(
        "No WebSocket endpoint at that path (404)",
        ("The frontend uses a path the server does not serve (prefix, trailing slash, typo).",),
        (
            "Compare the path with the server's routes (Sentinel serves ws/mission-updates).",
            "sentinel-ws health --fix tries the path with and without slashes and the "
            "common WebSocket paths.",
        ),
    ),
    "upstream_unreachable": Advice(
        "The proxy could not reach the server",
        ("The server is not running, listens on another port, or does not answer in time.",),
        ("Start the server, or point the proxy at it with --upstream.",),
    ),
    "idle_timeout": Advice(
        "Server closed an idle connection",
        ("The server (or a proxy in front of it) closes connections with no traffic.",),
        (
            "Send heartbeats (application messages or pings) more often than the idle timeout.",
            "Reconnect when the server closes an idle connection.",
        ),
    ),
    "too_big": Advice(
        "Message too big (1009)",
        ("A message exceeded a size limit on the server, the client or the proxy.",),
        (
            "Split large messages, or raise the limit where it is hit "
            "(the proxy's is --max-message).",
        ),
    ),
    "protocol_error": Advice(
        "Protocol error (1002, 1003 or 1007)",
        ("A peer sent a malformed frame, an unexpected data type, or invalid UTF-8 text.",),
        ("Inspect the last frames before the close with sentinel-ws show ID --payloads.",),
    ),
    "app_error": Advice(
        "The app refused the client inside the messages",
        (
            "An application-level refusal after the WebSocket opened: a Socket.IO "
            "connect_error (authentication failed in a connect handler, a namespace "
            "middleware) or a server-side disconnect.",
        ),
        (
            "The message the app sent says why (sentinel-ws show ID decodes Socket.IO "
            "packets); check the auth data the client passes when it connects.",
        ),
    ),
    "proxy_shutdown": Advice(
        "Closed because the proxy stopped",
        ("The proxy was stopped while the session was open.",),
        ("Nothing to fix in the app.",),
    ),
    "injected": Advice(
        "Ended by a fault you injected",
        ("sentinel-ws proxy --fault (or the fault API) closed, cut or refused it on purpose.",),
        (
            "Read the recovery report: did the client come back, how fast, and with what "
            "backoff between retries?",
        ),
    ),
    "open": Advice(
        "Still open",
        ("The session had not ended when the recording was read.",),
        ("Nothing to fix yet.",),
    ),
    "clean": Advice("Closed normally", ("A normal close (1000) with a completed handshake.",), ()),
    "other": Advice(
        "Other endings",
        ("Application close codes (4000-4999) or an unusual handshake status.",),
        ("Look at the close code and reason with sentinel-ws show ID.",),
    ),
}
