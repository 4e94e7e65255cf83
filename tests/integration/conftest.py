"""Fixtures shared by the integration tests (real MariaDB, real sockets).

`lab` starts one private lab (tests/lab) for the whole test session, or
reuses the one named by $SOCKMAIL_LAB (./check starts it once for the unit
and integration tests). `build` is the meson build directory whose programs
are tested ($SOCKMAIL_BUILD, default ./build).
"""
import os
import pathlib
import shutil
import socket
import subprocess
import tempfile
import time

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]


class Lab:
    def __init__(self, path):
        self.dir = pathlib.Path(path)
        self.config = self.dir / "sockmail.conf"
        self.mysql_socket = self.dir / "mysql.sock"
        self.mail = self.dir / "mail"

    def maildir(self, address):
        local, domain = address.split("@")
        return self.mail / domain / local

    def new_messages(self, address):
        """Files in new/, oldest first by the time in their unique names
        (secs.M<usecs>...: microseconds are not zero-padded)."""
        d = self.maildir(address) / "new"

        def when(p):
            secs, rest = p.name.split(".", 1)
            usecs = rest[1:].split("P", 1)[0] if rest.startswith("M") else "0"
            return (int(secs), int(usecs) if usecs.isdigit() else 0, p.name)
        return sorted(d.iterdir(), key=when) if d.exists() else []

    def sql(self, statement, user="root"):
        """Runs STATEMENT as the lab's root user; returns stdout."""
        return subprocess.run(
            ["mariadb", "--no-defaults", "-u", user, f"--socket={self.mysql_socket}",
             "-N", "-B", "mailserver", "-e", statement],
            check=True, capture_output=True, text=True).stdout

    def db_stop(self):
        subprocess.run([str(ROOT / "tests/lab"), "db-stop", str(self.dir)], check=True)

    def db_start(self):
        subprocess.run([str(ROOT / "tests/lab"), "db-start", str(self.dir)], check=True)


@pytest.fixture(scope="session")
def build():
    return pathlib.Path(os.environ.get("SOCKMAIL_BUILD", ROOT / "build")).resolve()


@pytest.fixture(scope="session")
def lab():
    given = os.environ.get("SOCKMAIL_LAB")
    if given:
        yield Lab(given)
        return
    path = tempfile.mkdtemp(prefix="sockmail-lab-")
    subprocess.run([str(ROOT / "tests/lab"), "start", path], check=True)
    try:
        yield Lab(path)
    finally:
        subprocess.run([str(ROOT / "tests/lab"), "stop", path], check=False)
        shutil.rmtree(path, ignore_errors=True)


def free_port():
    """A loopback TCP port nobody listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port, host="127.0.0.1", timeout=10.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection((host, port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.02)
    raise TimeoutError(f"nothing listens on {host}:{port}")


def wait_path(path, timeout=10.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if os.path.exists(path):
            return
        time.sleep(0.02)
    raise TimeoutError(f"{path} did not appear")


def wait_unix(path, timeout=10.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.socket(socket.AF_UNIX) as s:
                s.connect(str(path))
                return
        except OSError:
            time.sleep(0.02)
    raise TimeoutError(f"nothing listens on {path}")


class Activated:
    """A handler under systemd-socket-activate --accept, on a loopback port
    or a unix socket; stopped by PID at the end."""

    def __init__(self, argv, port=None, unix=None, inetd=True, env=None):
        self.port, self.unix = port, unix
        listen = unix if unix else f"127.0.0.1:{port}"
        cmd = ["systemd-socket-activate", "--accept", "-l", str(listen)]
        if inetd:
            cmd.append("--inetd")
        for k in (env or {}):
            cmd += ["-E", k]
        full_env = dict(os.environ, **(env or {}))
        self.proc = subprocess.Popen(cmd + [str(a) for a in argv], env=full_env,
                                     stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        if unix:
            wait_path(unix)
            wait_unix(unix)  # the path exists at bind(), before listen()
        else:
            wait_port(port)

    def stop(self):
        self.proc.terminate()
        try:
            self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


@pytest.fixture
def activate():
    """activate(argv, port=..|unix=.., inetd=True, env={}) -> Activated."""
    started = []

    def start(argv, **kw):
        a = Activated(argv, **kw)
        started.append(a)
        return a

    yield start
    for a in started:
        a.stop()
