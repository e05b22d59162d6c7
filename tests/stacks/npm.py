"""`npm ci` for the Node stacks under tests/stacks/, from their committed lockfiles.

Run once per folder when its node_modules is missing or was installed from another
lockfile (a stamp file holds the lockfile's hash); safe to call from parallel processes
(a file lock beside the lockfile).
"""

from __future__ import annotations

import fcntl
import hashlib
import shutil
import subprocess
from pathlib import Path


class NpmFailed(RuntimeError):
    """node or npm is missing, or `npm ci` failed: the message says which."""


def ensure_node_modules(folder: Path, timeout: float = 600.0) -> Path:
    """The folder's node_modules, installed by `npm ci` when it is missing or stale."""
    modules = folder / "node_modules"
    stamp = modules / ".sentinel-lock-sha256"
    digest = hashlib.sha256((folder / "package-lock.json").read_bytes()).hexdigest()
    if stamp.is_file() and stamp.read_text().strip() == digest:
        return modules
    for tool in ("node", "npm"):
        if shutil.which(tool) is None:
            raise NpmFailed(f"no {tool} on PATH (apt-get install nodejs npm)")
    with open(folder / ".npm-ci.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if stamp.is_file() and stamp.read_text().strip() == digest:
            return modules
        done = subprocess.run(
            ["npm", "ci", "--no-audit", "--no-fund", "--loglevel=error"],
            cwd=folder,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        if done.returncode != 0:
            raise NpmFailed(
                f"`npm ci` failed in {folder} (exit {done.returncode}):\n"
                + (done.stdout + done.stderr)[-3000:]
            )
        stamp.write_text(digest + "\n")
    return modules
