"""Runs a proxy never ended (killed, crashed): found, and closed as they must have ended.

The next proxy to open the file writes the fix; readers show the same
without writing (they open recordings read-only).
"""

from __future__ import annotations

import os
import socket
import sys

from sqlite_utils import Database

CRASHED = "proxy stopped without closing (it crashed or was killed)"


def crashed_runs(db: Database) -> list[int]:
    """Runs that never ended and whose proxy is gone (this host only: another host's
    proxy may still be writing a shared file)."""
    rows = db.execute(
        "SELECT id, pid, hostname FROM runs WHERE ended_at IS NULL AND listen != 'import'"
    ).fetchall()
    here = socket.gethostname()
    return [run_id for run_id, pid, host in rows if host == here and not alive(pid or 0)]


def in_use(db: Database) -> tuple[int, int] | None:
    """(run id, pid) of a proxy on this host still writing the file, if one is."""
    rows = db.execute(
        "SELECT id, pid FROM runs WHERE ended_at IS NULL AND hostname = ?",
        [socket.gethostname()],
    ).fetchall()
    for run_id, pid in rows:
        if pid and pid != os.getpid() and alive(pid):
            return run_id, pid
    return None


def end_crashed_run(db: Database, run_id: int) -> None:
    """Close what a killed proxy left open: its sessions end at their last frame."""
    db.execute(
        f"""UPDATE sessions SET
          ended_at = max(started_at, coalesce(
            (SELECT max(ts) FROM frames WHERE session_id = sessions.id), started_at)),
          closed_by = 'proxy', clean = 0, error = coalesce(error, '{CRASHED}'),
          frames_c2s = (SELECT count(*) FROM frames
                        WHERE session_id = sessions.id AND direction = 'c2s'),
          frames_s2c = (SELECT count(*) FROM frames
                        WHERE session_id = sessions.id AND direction = 's2c'),
          bytes_c2s = (SELECT coalesce(sum(size), 0) FROM frames
                       WHERE session_id = sessions.id AND direction = 'c2s'),
          bytes_s2c = (SELECT coalesce(sum(size), 0) FROM frames
                       WHERE session_id = sessions.id AND direction = 's2c'),
          last_frame_at = (SELECT max(ts) FROM frames
                           WHERE session_id = sessions.id AND opcode != 'close')
        WHERE run_id = ? AND ended_at IS NULL""",
        [run_id],
    )
    db.execute(
        """UPDATE runs SET ended_at = (SELECT max(t) FROM (
             SELECT max(ended_at) AS t FROM sessions WHERE run_id = :run
             UNION ALL SELECT max(ts) FROM http_requests WHERE run_id = :run
             UNION ALL SELECT started_at FROM runs WHERE id = :run))
           WHERE id = :run""",
        {"run": run_id},
    )
    db.conn.commit()


def alive(pid: int) -> bool:
    if sys.platform == "win32":
        # os.kill with signal 0 is not a probe on Windows; skip the check there.
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    except OSError:
        return False
    return True
