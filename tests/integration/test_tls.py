"""The TLS transport (common/tls.c, io.c, conn.c) against real clients.

tests/tools/sm-lineserver runs under systemd-socket-activate --accept
--inetd with the lab's certificate; gnutls-cli, openssl s_client and
Python's ssl talk to it, with implicit TLS and with STARTTLS.
"""
import os
import select
import signal
import socket
import ssl
import subprocess
import time

import pytest

from conftest import free_port

TIMEOUT = 10


@pytest.fixture
def server(lab, build, activate):
    """Starts sm-lineserver (plain+STARTTLS on .port, implicit TLS on
    .tls_port); returns an object with the ports and the lab's cert."""
    prog = build / "tests/tools/sm-lineserver"
    if not prog.exists():
        pytest.skip(f"{prog} not built")

    class S:
        pass

    s = S()
    s.port, s.tls_port = free_port(), free_port()
    s.cert = lab.dir / "tls/cert.pem"
    activate([prog, "-c", lab.config], port=s.port)
    activate([prog, "-c", lab.config, "--tls"], port=s.tls_port)
    return s


def verified_ctx(cert):
    ctx = ssl.create_default_context(cafile=str(cert))
    return ctx


def read_line(f):
    line = f.readline()
    assert line, "connection closed early"
    return line.decode().rstrip("\r\n")


def read_until(proc, needle, deadline):
    """Reads proc.stdout until NEEDLE shows up (or EOF/timeout)."""
    buf = b""
    fd = proc.stdout.fileno()
    while needle.encode() not in buf and time.monotonic() < deadline:
        r, _, _ = select.select([fd], [], [], max(0.0, deadline - time.monotonic()))
        if not r:
            break
        chunk = os.read(fd, 65536)
        if not chunk:
            break
        buf += chunk
    return buf.decode(errors="replace")


# --- Python ssl ---

def test_python_implicit_tls13_verified(server):
    ctx = verified_ctx(server.cert)
    with socket.create_connection(("127.0.0.1", server.tls_port), timeout=TIMEOUT) as raw:
        with ctx.wrap_socket(raw, server_hostname="localhost") as s:
            f = s.makefile("rb")
            assert read_line(f) == "+OK ready"
            assert s.version() == "TLSv1.3"
            s.sendall(b"hello there\r\nTLS\r\n")
            assert read_line(f) == "ECHO hello there"
            tls = read_line(f)
            assert tls.startswith("+OK TLSv1.3 cipher=TLS_"), tls
            assert tls.endswith(" discarded=0")
            s.sendall(b"QUIT\r\n")
            assert read_line(f) == "+OK bye"
            assert f.readline() == b""


def test_python_tls12(server):
    ctx = verified_ctx(server.cert)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.maximum_version = ssl.TLSVersion.TLSv1_2
    with socket.create_connection(("127.0.0.1", server.tls_port), timeout=TIMEOUT) as raw:
        with ctx.wrap_socket(raw, server_hostname="localhost") as s:
            f = s.makefile("rb")
            assert read_line(f) == "+OK ready"
            assert s.version() == "TLSv1.2"
            s.sendall(b"TLS\r\n")
            assert read_line(f).startswith("+OK TLSv1.2 cipher=")


@pytest.mark.parametrize("version", ["TLSv1", "TLSv1_1"])
def test_python_old_versions_refused(server, version):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    ctx.set_ciphers("DEFAULT:@SECLEVEL=0")  # so the client really offers it
    ctx.minimum_version = getattr(ssl.TLSVersion, version)
    ctx.maximum_version = getattr(ssl.TLSVersion, version)
    with socket.create_connection(("127.0.0.1", server.tls_port), timeout=TIMEOUT) as raw:
        with pytest.raises(ssl.SSLError) as e:
            with ctx.wrap_socket(raw, server_hostname="localhost") as s:
                s.recv(100)
    # the server's refusal, not the client's own "no protocols available"
    assert "NO_PROTOCOLS_AVAILABLE" not in str(e.value), e.value


def test_plaintext_pipelining(server):
    with socket.create_connection(("127.0.0.1", server.port), timeout=TIMEOUT) as s:
        f = s.makefile("rb")
        assert read_line(f) == "+OK ready"
        s.sendall(b"one\r\ntwo\nTLS\r\n" + b"x" * 600 + b"\r\nthree\r\n")
        assert read_line(f) == "ECHO one"
        assert read_line(f) == "ECHO two"
        assert read_line(f) == "-ERR not TLS"
        assert read_line(f) == "-ERR line too long"
        assert read_line(f) == "ECHO three"


def test_python_starttls_injection_discarded(server):
    """CVE-2011-0411 class: a command sent in the same packet as STARTTLS
    must not be executed after the handshake."""
    ctx = verified_ctx(server.cert)
    with socket.create_connection(("127.0.0.1", server.port), timeout=TIMEOUT) as raw:
        f = raw.makefile("rb")
        assert read_line(f) == "+OK ready"
        raw.sendall(b"STARTTLS\r\nINJECTED\r\n")
        assert read_line(f) == "+OK begin TLS"
        with ctx.wrap_socket(raw, server_hostname="localhost") as s:
            tf = s.makefile("rb")
            s.sendall(b"after\r\nTLS\r\n")
            first = read_line(tf)
            assert first == "ECHO after", f"injected plaintext executed: {first!r}"
            tls = read_line(tf)
            assert tls.startswith("+OK TLSv1.3 cipher=") and tls.endswith(" discarded=10"), tls
            s.sendall(b"STARTTLS\r\nQUIT\r\n")
            assert read_line(tf) == "-ERR TLS already active"
            assert read_line(tf) == "+OK bye"


# --- gnutls-cli ---

def test_gnutls_cli_implicit(server):
    proc = subprocess.Popen(
        ["gnutls-cli", f"--x509cafile={server.cert}", "-p", str(server.tls_port), "localhost"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + TIMEOUT
        assert "+OK ready" in read_until(proc, "+OK ready", deadline)
        proc.stdin.write(b"TLS\nQUIT\n")
        proc.stdin.flush()
        out = read_until(proc, "+OK bye", deadline)
        assert "+OK TLSv1.3 cipher=TLS_" in out, out
        assert "+OK bye" in out
    finally:
        proc.kill()
        proc.wait()


def test_gnutls_cli_starttls(server):
    proc = subprocess.Popen(
        ["gnutls-cli", "--starttls", f"--x509cafile={server.cert}", "-p", str(server.port), "localhost"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + TIMEOUT
        assert "+OK ready" in read_until(proc, "+OK ready", deadline)
        proc.stdin.write(b"STARTTLS\n")
        proc.stdin.flush()
        assert "+OK begin TLS" in read_until(proc, "+OK begin TLS", deadline)
        proc.send_signal(signal.SIGALRM)  # gnutls-cli: start the handshake now
        # typed input must wait until the session is encrypted
        out = read_until(proc, "- Options:", deadline)  # printed after the handshake
        assert "- Status: The certificate is trusted." in out, out
        proc.stdin.write(b"TLS\nQUIT\n")
        proc.stdin.flush()
        out = read_until(proc, "+OK bye", deadline)
        assert "+OK TLSv1.3 cipher=" in out and " discarded=0" in out, out
    finally:
        proc.kill()
        proc.wait()


def test_gnutls_cli_tls11_refused(server):
    r = subprocess.run(
        ["gnutls-cli", "--insecure", "--priority=NORMAL:-VERS-ALL:+VERS-TLS1.1",
         "-p", str(server.tls_port), "127.0.0.1"],
        input=b"", capture_output=True, timeout=TIMEOUT)
    out = r.stdout.decode(errors="replace") + r.stderr.decode(errors="replace")
    assert r.returncode != 0
    assert "+OK ready" not in out
    assert "Error in protocol version" in out, out  # the server's alert


# --- openssl s_client ---

def s_client(port, *args, input=b"TLS\r\nQUIT\r\n"):
    return subprocess.run(
        ["openssl", "s_client", "-connect", f"127.0.0.1:{port}", "-quiet", *args],
        input=input, capture_output=True, timeout=TIMEOUT)


def test_openssl_tls12(server):
    r = s_client(server.tls_port, "-tls1_2", "-CAfile", str(server.cert), "-verify_return_error")
    out = r.stdout.decode(errors="replace")
    assert "+OK ready" in out, r.stderr.decode(errors="replace")
    assert "+OK TLSv1.2 cipher=" in out
    assert "+OK bye" in out


def test_openssl_tls13(server):
    r = s_client(server.tls_port, "-tls1_3", "-CAfile", str(server.cert), "-verify_return_error")
    out = r.stdout.decode(errors="replace")
    assert "+OK TLSv1.3 cipher=TLS_" in out, r.stderr.decode(errors="replace")


@pytest.mark.parametrize("flag", ["-tls1_1", "-tls1"])
def test_openssl_old_versions_refused(server, flag):
    r = s_client(server.tls_port, flag, "-cipher", "DEFAULT:@SECLEVEL=0")
    out = r.stdout.decode(errors="replace")
    err = r.stderr.decode(errors="replace")
    assert "+OK ready" not in out
    assert r.returncode != 0
    # the server answered with an alert (the client did offer the version)
    assert "alert protocol version" in err or "unsupported protocol" in err, err
    assert "no protocols available" not in err, err


def test_plaintext_client_on_tls_port(server):
    """A client that speaks plaintext to the implicit-TLS port gets nothing
    executed and the connection closed."""
    with socket.create_connection(("127.0.0.1", server.tls_port), timeout=TIMEOUT) as s:
        s.sendall(b"QUIT\r\n")
        data = b""
        try:
            while True:
                chunk = s.recv(4096)
                if not chunk:
                    break
                data += chunk
        except ConnectionResetError:
            pass  # closed with our unread plaintext still queued
        assert b"+OK" not in data
        assert data[:1] in (b"", b"\x15")  # nothing, or a TLS alert record
