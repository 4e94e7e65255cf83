"""smtp-handler and pop3-handler load GnuTLS when a connection first starts
TLS (-Dgnutls_link=dlopen, common/gnutls-dl.c): a plain session never maps
it, and when the library cannot be loaded the client hears "TLS not
available" (SMTP 454 4.7.0, POP3 -ERR), implicit TLS closes, and the log
names the library. LD_LIBRARY_PATH naming a directory whose
libgnutls.so.30 is not a library makes the load fail without touching the
system's copy. Skipped for a build linked with GnuTLS (-Dgnutls_link=shared)."""
import os
import re
import socket
import ssl
import subprocess

import pytest

SMTP = "handlers/smtp-handler/smtp-handler"
POP3 = "handlers/pop3-handler/pop3-handler"
FAILED = re.compile(r'reason="tls: GnuTLS \(libgnutls\.so\.30\) cannot be loaded: (\S+)/libgnutls\.so\.30: ')


def dlopen_build(exe):
    needed = subprocess.run(["readelf", "-d", exe], capture_output=True, text=True, check=True).stdout
    return "libgnutls" not in needed


@pytest.fixture
def broken(build, tmp_path):
    """Runs a handler with a broken libgnutls.so.30 first on its library
    path: run(program, args, session bytes) -> CompletedProcess."""
    for program in (SMTP, POP3):
        if not dlopen_build(build / program):
            pytest.skip(f"{program} is linked with GnuTLS (-Dgnutls_link=shared)")
    libdir = tmp_path / "lib"
    libdir.mkdir()
    (libdir / "libgnutls.so.30").write_text("not a library\n")

    def run(program, args, session):
        r = subprocess.run([build / program, *args], input=session, capture_output=True,
                           timeout=30, env=dict(os.environ, LD_LIBRARY_PATH=str(libdir)))
        m = FAILED.search(r.stderr.decode(errors="replace"))
        assert m and m.group(1) == str(libdir), r.stderr  # the log says which file failed
        return r
    return run


def test_smtp_starttls_is_454(lab, broken):
    r = broken(SMTP, ["-c", lab.config, "--mode", "mx"],
               b"EHLO probe.example\r\nSTARTTLS\r\nMAIL FROM:<a@example.org>\r\nQUIT\r\n")
    replies = [l for l in r.stdout.decode().split("\r\n") if l[3:4] == " "]
    assert replies[2] == "454 4.7.0 TLS not available due to local problem", r.stdout
    assert replies[3].startswith("250 ")  # the session goes on in plain text
    assert r.returncode == 0


def test_pop3_stls_is_err(lab, broken):
    r = broken(POP3, ["-c", lab.config], b"STLS\r\nCAPA\r\nQUIT\r\n")
    lines = r.stdout.decode().split("\r\n")
    assert lines[1] == "-ERR [SYS/TEMP] TLS not available due to a local problem.", r.stdout
    assert lines[2].startswith("+OK") and "STLS" in lines  # still offered, as for a bad cert
    assert r.returncode == 0


@pytest.mark.parametrize("program,args", [(SMTP, ["--mode", "submission"]), (POP3, [])])
def test_implicit_tls_closes(lab, broken, program, args):
    r = broken(program, ["-c", lab.config, "--tls", *args], b"\x16\x03\x01\x00\x05hello")
    assert r.stdout == b""  # no plain-text reply where the client expects a handshake
    assert r.returncode == 75  # EX_TEMPFAIL


def mapped(pid):
    with open(f"/proc/{pid}/maps") as f:
        return "libgnutls.so" in f.read()


def test_gnutls_mapped_only_after_stls(lab, build):
    exe = build / POP3
    if not dlopen_build(exe):
        pytest.skip("pop3-handler is linked with GnuTLS (-Dgnutls_link=shared)")
    a, b = socket.socketpair()
    proc = subprocess.Popen([exe, "-c", lab.config], stdin=b, stdout=b, stderr=subprocess.DEVNULL)
    b.close()
    try:
        a.settimeout(30)
        f = a.makefile("rb")
        assert f.readline().startswith(b"+OK")
        assert not mapped(proc.pid)  # greeted, and GnuTLS not loaded
        a.sendall(b"STLS\r\n")
        assert f.readline().startswith(b"+OK")
        ctx = ssl.create_default_context(cafile=str(lab.dir / "tls/cert.pem"))
        ctx.check_hostname = False
        with ctx.wrap_socket(a, server_hostname="localhost") as t:
            assert mapped(proc.pid)
            tf = t.makefile("rb")
            t.sendall(b"QUIT\r\n")
            assert tf.readline().startswith(b"+OK")
        assert proc.wait(timeout=30) == 0
    finally:
        proc.kill()
        proc.wait()
