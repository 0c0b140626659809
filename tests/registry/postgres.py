"""A throwaway PostgreSQL server for tests and benchmarks: ``initdb`` + ``pg_ctl`` on a free 127.0.0.1 port,
data and socket in a temp directory, stopped (and deleted) at the end.

PostgreSQL refuses to run as root, so under root (as in CI) the server runs as the system user
``mcpostgres``, created here if missing, via ``runuser``. When the binaries are absent the caller skips,
with the reason :func:`find_bindir` gives.
"""

from __future__ import annotations

import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

PG_USER = "mcpostgres"


def find_bindir() -> tuple[Path | None, str]:
    """The directory of ``initdb``/``pg_ctl``, or None and why not."""
    candidates = []
    if shutil.which("pg_config"):
        out = subprocess.run(["pg_config", "--bindir"], capture_output=True, text=True, check=False).stdout.strip()
        if out:
            candidates.append(Path(out))
    candidates += sorted(Path("/usr/lib/postgresql").glob("*/bin"), reverse=True)
    if shutil.which("initdb"):
        candidates.append(Path(shutil.which("initdb") or "").parent)
    for bindir in candidates:
        if (bindir / "initdb").exists() and (bindir / "pg_ctl").exists():
            return bindir, ""
    return None, ("PostgreSQL server binaries (initdb, pg_ctl) not found: install them (Debian: "
                  "`apt-get install -y postgresql`) to run the PostgreSQL tests")


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _ensure_user() -> str:
    try:
        pwd.getpwnam(PG_USER)
    except KeyError:
        subprocess.run(["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", PG_USER],
                       check=True, capture_output=True)
    return PG_USER


class PostgresServer:
    """One running server; ``url(db)`` is a SQLAlchemy URL, ``create_database()`` a fresh empty database."""

    def __init__(self, bindir: Path) -> None:
        self.bindir = bindir
        self.root = Path(tempfile.mkdtemp(prefix="mc-postgres-"))
        self.data, self.sockets = self.root / "data", self.root / "sockets"
        self.port = _free_port()
        self.user = _ensure_user() if os.geteuid() == 0 else None
        self._count = 0

    def _run(self, *args: str) -> subprocess.CompletedProcess[str]:
        command = [str(a) for a in args]
        if self.user is not None:
            command = ["runuser", "-u", self.user, "--", *command]
        return subprocess.run(command, capture_output=True, text=True, check=False, cwd=self.root)

    def start(self) -> PostgresServer:
        self.sockets.mkdir(parents=True)
        if self.user is not None:
            info = pwd.getpwnam(self.user)
            for path in (self.root, self.sockets):
                os.chown(path, info.pw_uid, info.pw_gid)
            os.chmod(self.root, 0o755)
        done = self._run(self.bindir / "initdb", "-D", self.data, "-U", "postgres", "--auth=trust", "-E", "UTF8",
                         "--no-sync")
        if done.returncode != 0:
            raise RuntimeError(f"initdb failed:\n{done.stdout}\n{done.stderr}")
        options = (f"-p {self.port} -k {self.sockets} -c listen_addresses=127.0.0.1 -c fsync=off "
                   "-c synchronous_commit=off -c full_page_writes=off -c max_connections=100")
        done = self._run(self.bindir / "pg_ctl", "-D", self.data, "-o", options, "-l", self.root / "server.log",
                         "-w", "-t", "60", "start")
        if done.returncode != 0:
            log = (self.root / "server.log").read_text() if (self.root / "server.log").exists() else ""
            raise RuntimeError(f"pg_ctl start failed:\n{done.stdout}\n{done.stderr}\n{log}")
        return self

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"

    def create_database(self) -> str:
        """A new empty database; its SQLAlchemy URL."""
        import psycopg

        self._count += 1
        name = f"test_{os.getpid()}_{self._count}_{int(time.time() * 1000) % 100000}"
        with psycopg.connect(f"host=127.0.0.1 port={self.port} user=postgres dbname=postgres",
                             autocommit=True) as connection:
            connection.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def psql(self, sql: str, database: str = "postgres") -> str:
        """Run ``sql`` with ``psql`` (for manual checks); its output."""
        psql = self.bindir / "psql" if (self.bindir / "psql").exists() else Path(shutil.which("psql") or "psql")
        done = subprocess.run([str(psql), "-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres", "-d", database,
                               "-At", "-c", sql], capture_output=True, text=True, check=True)
        return done.stdout

    def stop(self) -> None:
        self._run(self.bindir / "pg_ctl", "-D", self.data, "-m", "fast", "-w", "stop")
        shutil.rmtree(self.root, ignore_errors=True)


if __name__ == "__main__":  # start one by hand: python tests/registry/postgres.py
    found, why = find_bindir()
    if found is None:
        raise SystemExit(why)
    server = PostgresServer(found).start()
    print(f"PostgreSQL on {server.url()}; `psql -h 127.0.0.1 -p {server.port} -U postgres`. Ctrl-C stops it.")
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        server.stop()
