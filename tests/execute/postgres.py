"""A throw-away PostgreSQL cluster on a free local port (for tests and benchmarks).

`initdb` + `pg_ctl` of Debian's postgresql package (`make pg` installs it) in a temporary
folder, TCP on 127.0.0.1 only, trust authentication, fsync off; stopped and removed on
leaving. initdb refuses to run as root: as root the cluster is made and run by the
`postgres` user (or `nobody`) through `runuser`. Where the server, its driver or an
unprivileged user is missing, `Unavailable` says why.
"""

from __future__ import annotations

import contextlib
import glob
import itertools
import os
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

PG_USER = "normnas"  # the cluster's superuser (trust authentication, 127.0.0.1 only)


class Unavailable(Exception):
    """No PostgreSQL server can be started here; the message says why."""


def pg_bin() -> Path | None:
    """The folder of initdb and pg_ctl: Debian keeps them off PATH, per major version."""
    for folder in sorted(glob.glob("/usr/lib/postgresql/*/bin"), reverse=True):
        if all(os.access(Path(folder, tool), os.X_OK) for tool in ("initdb", "pg_ctl")):
            return Path(folder)
    initdb, pg_ctl = shutil.which("initdb"), shutil.which("pg_ctl")
    if initdb and pg_ctl and Path(initdb).parent == Path(pg_ctl).parent:
        return Path(initdb).parent
    return None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _as_user() -> tuple[list[str], str | None]:
    """The command prefix that runs the server's tools unprivileged, and that user (None:
    the current one)."""
    if os.geteuid() != 0:
        return [], None
    import pwd

    runuser = shutil.which("runuser")
    for name in ("postgres", "nobody"):
        try:
            pwd.getpwnam(name)
        except KeyError:
            continue
        if runuser:
            return [runuser, "-u", name, "--"], name
    raise Unavailable("running as root with no runuser or unprivileged user for initdb")


@contextlib.contextmanager
def cluster() -> Iterator[str]:
    """The base URL (no database) of a new cluster, running while inside."""
    bin_dir = pg_bin()
    if bin_dir is None:
        raise Unavailable(
            "not installed (no initdb/pg_ctl); `make pg` or apt-get install postgresql"
        )
    try:
        import psycopg2  # noqa: F401
    except ImportError:
        raise Unavailable("psycopg2 not installed; pip install 'normnas[postgres]'") from None
    prefix, user = _as_user()
    root = Path(tempfile.mkdtemp(prefix="normnas-pg-"))
    data, log = root / "data", root / "server.log"
    if user is not None:
        shutil.chown(root, user=user)
    port = free_port()

    def tool(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([*prefix, *args], capture_output=True, text=True, timeout=120)

    made = tool(str(bin_dir / "initdb"), "-D", str(data), "-U", PG_USER, "--auth=trust",
                "-E", "UTF8", "--no-sync")  # fmt: skip
    if made.returncode != 0:
        shutil.rmtree(root, ignore_errors=True)
        raise Unavailable(f"initdb failed: {(made.stderr or made.stdout).strip()[-300:]}")
    # fsync off: a throw-away cluster; sockets in its own folder, TCP on 127.0.0.1 only
    options = f"-h 127.0.0.1 -p {port} -k {root} -F -c max_connections=200"
    started = tool(str(bin_dir / "pg_ctl"), "-D", str(data), "-o", options, "-l", str(log),
                   "-w", "-t", "60", "start")  # fmt: skip
    if started.returncode != 0:
        why = log.read_text()[-300:] if log.exists() else started.stderr[-300:]
        shutil.rmtree(root, ignore_errors=True)
        raise Unavailable(f"the server did not start: {why.strip()}")
    try:
        yield f"postgresql://{PG_USER}@127.0.0.1:{port}"
    finally:
        tool(str(bin_dir / "pg_ctl"), "-D", str(data), "-m", "immediate", "-w", "stop")
        shutil.rmtree(root, ignore_errors=True)


_NUMBERS = itertools.count()


def new_database(base: str) -> str:
    """A new, empty database on the cluster at `base`: its URL."""
    import psycopg2

    name = f"t{os.getpid()}_{next(_NUMBERS)}"
    conn = psycopg2.connect(f"{base}/postgres")
    try:
        conn.autocommit = True  # CREATE DATABASE cannot run in a transaction
        with conn.cursor() as cur:
            cur.execute(f"CREATE DATABASE {name}")
    finally:
        conn.close()
    return f"{base}/{name}"
