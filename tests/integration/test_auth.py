"""auth-checker against the lab's MariaDB: the Dovecot auth protocol over a
unix socket (systemd-socket-activate --accept), the auth-client library
(tests/tools/sm-auth-client), checkpassword through fd 3, --test, and
hashes exchanged with Dovecot's `doveadm pw`."""
import base64
import os
import re
import socket
import subprocess
import time

import pytest

ALICE = ("alice@example.com", "alice-secret")


def b64(data):
    return base64.b64encode(data if isinstance(data, bytes) else data.encode()).decode()


def plain(user, password, authzid=""):
    return b64(f"{authzid}\0{user}\0{password}")


def make_config(lab, path, **auth):
    """The lab's config plus an [auth] section (failure_delay 0 unless given)."""
    settings = {"failure_delay": "0", "socket": str(path.parent / "auth.sock")}
    settings.update({k: str(v) for k, v in auth.items()})
    text = lab.config.read_text() + "[auth]\n" + "".join(f"{k} = {v}\n" for k, v in settings.items())
    path.write_text(text)
    return path


class Client:
    """A Dovecot auth protocol client, line by line."""

    def __init__(self, path, hello=True, minor=2):
        self.s = socket.socket(socket.AF_UNIX)
        self.s.settimeout(10)
        self.s.connect(str(path))
        self.buf = b""
        self.handshake = []
        while True:
            line = self.line()
            assert line is not None, "closed during handshake"
            self.handshake.append(line)
            if line == "DONE":
                break
        if hello:
            self.send(f"VERSION\t1\t{minor}")
            self.send("CPID\t4242")

    def send(self, line):
        self.s.sendall((line + "\n").encode() if isinstance(line, str) else line)

    def line(self):
        while b"\n" not in self.buf:
            try:
                data = self.s.recv(4096)
            except ConnectionResetError:
                return None
            if not data:
                return None
            self.buf += data
        line, self.buf = self.buf.split(b"\n", 1)
        return line.decode()

    def closed(self):
        """True when the server closes without saying more."""
        return self.line() is None

    def close(self):
        self.s.close()


@pytest.fixture
def checker(lab, build, activate, tmp_path):
    """start(**auth_settings) -> socket path of a fresh auth-checker."""
    def start(**auth):
        sock = tmp_path / f"auth{len(list(tmp_path.glob('auth*.sock')))}.sock"
        conf = make_config(lab, tmp_path / f"{sock.stem}.conf", socket=sock, **auth)
        activate([build / "handlers/auth-checker/auth-checker", "-c", conf], unix=sock)
        return sock
    return start


@pytest.fixture
def sock(checker):
    return checker()


def test_handshake(sock):
    c = Client(sock, hello=False)
    h = c.handshake
    assert h[0] == "VERSION\t1\t2"
    assert "MECH\tPLAIN\tplaintext" in h and "MECH\tLOGIN\tplaintext" in h
    assert any(re.fullmatch(r"SPID\t\d+", x) for x in h)
    assert any(re.fullmatch(r"CUID\t\d+", x) for x in h)
    assert any(re.fullmatch(r"COOKIE\t[0-9a-f]{32}", x) for x in h)
    assert h[-1] == "DONE"


def test_plain_ok_and_canonical_name(sock):
    c = Client(sock)
    c.send(f"AUTH\t1\tPLAIN\tservice=smtp\tresp={plain('alice@EXAMPLE.COM', 'alice-secret')}")
    assert c.line() == "OK\t1\tuser=alice@example.com"


def test_plain_bad_and_unknown_both_delayed(checker):
    sock = checker(failure_delay=1)
    times = {}
    for who, user, pw in [("bad", "alice@example.com", "wrong"), ("unknown", "nobody@example.com", "x")]:
        c = Client(sock)
        t = time.monotonic()
        c.send(f"AUTH\t1\tPLAIN\tservice=smtp\tresp={plain(user, pw)}")
        reply = c.line()
        times[who] = time.monotonic() - t
        assert reply.startswith("FAIL\t1\t"), reply
        assert "reason=Authentication failed" in reply
        assert "temp" not in reply.split("\t")
    assert times["bad"] >= 0.9 and times["unknown"] >= 0.9, times
    assert abs(times["bad"] - times["unknown"]) < 0.5, times


def test_login_via_cont(sock):
    c = Client(sock)
    c.send("AUTH\t7\tLOGIN\tservice=imap")
    assert c.line() == f"CONT\t7\t{b64('Username:')}"
    c.send(f"CONT\t7\t{b64('bob@example.com')}")
    assert c.line() == f"CONT\t7\t{b64('Password:')}"
    c.send(f"CONT\t7\t{b64('bob-secret')}")
    assert c.line() == "OK\t7\tuser=bob@example.com"


def test_login_initial_response_is_user(sock):
    c = Client(sock)
    c.send(f"AUTH\t1\tLOGIN\tresp={b64('carol@example.net')}")
    assert c.line() == f"CONT\t1\t{b64('Password:')}"
    c.send(f"CONT\t1\t{b64('carol-secret')}")
    assert c.line() == "OK\t1\tuser=carol@example.net"


def test_plain_without_initial_response(sock):
    c = Client(sock)
    c.send("AUTH\t3\tPLAIN\tservice=smtp")
    assert c.line() == "CONT\t3\t"
    c.send(f"CONT\t3\t{plain(*ALICE)}")
    assert c.line() == "OK\t3\tuser=alice@example.com"


def test_many_requests_on_one_connection(sock):
    c = Client(sock)
    c.send(f"AUTH\t1\tPLAIN\tresp={plain(*ALICE)}")
    assert c.line() == "OK\t1\tuser=alice@example.com"
    c.send(f"AUTH\t2\tPLAIN\tresp={plain('bob@example.com', 'nope')}")
    assert c.line().startswith("FAIL\t2")
    c.send(f"AUTH\t3\tPLAIN\tresp={plain('bob@example.com', 'bob-secret')}")
    assert c.line() == "OK\t3\tuser=bob@example.com"
    # two interleaved LOGIN requests
    c.send("AUTH\t4\tLOGIN")
    c.send("AUTH\t5\tLOGIN")
    assert c.line().startswith("CONT\t4\t")
    assert c.line().startswith("CONT\t5\t")
    c.send(f"CONT\t5\t{b64('carol@example.net')}")
    c.send(f"CONT\t4\t{b64('alice@example.com')}")
    assert c.line().startswith("CONT\t5\t")
    assert c.line().startswith("CONT\t4\t")
    c.send(f"CONT\t4\t{b64('alice-secret')}")
    c.send(f"CONT\t5\t{b64('carol-secret')}")
    assert c.line() == "OK\t4\tuser=alice@example.com"
    assert c.line() == "OK\t5\tuser=carol@example.net"


def test_authzid_must_equal_authcid(sock):
    c = Client(sock)
    c.send(f"AUTH\t1\tPLAIN\tresp={plain('alice@example.com', 'alice-secret', authzid='bob@example.com')}")
    r = c.line()
    assert r.startswith("FAIL\t1") and "Authorization identity" in r
    c.send(f"AUTH\t2\tPLAIN\tresp={plain('alice@example.com', 'alice-secret', authzid='alice@example.com')}")
    assert c.line() == "OK\t2\tuser=alice@example.com"


def test_plaintext_policy(checker):
    sock = checker()
    c = Client(sock)
    resp = plain(*ALICE)
    c.send(f"AUTH\t1\tPLAIN\tlip=192.0.2.1\trip=198.51.100.7\tresp={resp}")
    r = c.line()
    assert r.startswith("FAIL\t1") and "Plaintext authentication disallowed" in r
    c.send("AUTH\t2\tLOGIN\trip=198.51.100.7")
    assert c.line().startswith("FAIL\t2\treason=Plaintext")
    c.send(f"AUTH\t3\tPLAIN\tlip=192.0.2.1\trip=198.51.100.7\tsecured\tresp={resp}")
    assert c.line() == "OK\t3\tuser=alice@example.com"
    c.send(f"AUTH\t4\tPLAIN\trip=127.0.0.1\tresp={resp}")
    assert c.line() == "OK\t4\tuser=alice@example.com"
    c.send(f"AUTH\t5\tPLAIN\tlip=192.0.2.1\trip=192.0.2.1\tresp={resp}")
    assert c.line() == "OK\t5\tuser=alice@example.com"
    c.send(f"AUTH\t6\tPLAIN\tresp={resp}")
    assert c.line() == "OK\t6\tuser=alice@example.com"
    allowed = Client(checker(allow_plaintext="yes"))
    allowed.send(f"AUTH\t1\tPLAIN\trip=198.51.100.7\tresp={resp}")
    assert allowed.line() == "OK\t1\tuser=alice@example.com"


@pytest.mark.parametrize("payload", [
    "resp=!!!!", "resp=AGFsaWNl", "resp=YWJj\x01", "resp=" + b64("\0alice@example.com\0pw\0x"),
    "resp=" + b64("\0\0alice-secret"), "resp=" + b64("\0alice@example.com\0"),
])
def test_garbage_payload_fails(sock, payload):
    c = Client(sock)
    c.send(f"AUTH\t1\tPLAIN\t{payload}")
    r = c.line()
    assert r is None or r.startswith("FAIL\t1"), r


def test_nul_in_login_user_fails(sock):
    c = Client(sock)
    c.send("AUTH\t1\tLOGIN")
    c.line()
    c.send(f"CONT\t1\t{b64(b'alice@example.com' + bytes([0]) + b'x')}")
    assert c.line().startswith("FAIL\t1")


def test_unknown_mechanism_and_ids(sock):
    c = Client(sock)
    c.send("AUTH\t1\tCRAM-MD5")
    assert c.line().startswith("FAIL\t1\treason=Unsupported")
    c.send("CONT\t9\tYWJj")
    assert c.line().startswith("FAIL\t9")
    c.send("AUTH\t2\tLOGIN")
    assert c.line().startswith("CONT\t2")
    c.send("AUTH\t2\tLOGIN")  # id in flight
    assert c.line().startswith("FAIL\t2\treason=Request id already in use")
    c.send(f"CONT\t2\t{b64('alice@example.com')}")  # the old one is gone
    assert c.line().startswith("FAIL\t2")
    c.send(f"AUTH\t3\tPLAIN\tresp={plain(*ALICE)}")
    assert c.line() == "OK\t3\tuser=alice@example.com"


def test_max_attempts_closes(checker):
    c = Client(checker(max_attempts=2))
    for i in (1, 2):
        c.send(f"AUTH\t{i}\tPLAIN\tresp={plain('alice@example.com', 'wrong')}")
        assert c.line().startswith(f"FAIL\t{i}")
    assert c.closed()


@pytest.mark.parametrize("lines", [
    ["AUTH\t1\tPLAIN"],                                 # before VERSION
    ["VERSION\t2\t0"],                                  # wrong major
    ["VERSION\t1\t0", "AUTH\t1\tPLAIN"],                # before CPID
    ["VERSION\t1\t0", "CPID\t1", "HELLO\tworld"],       # unknown command
    ["VERSION\t1\t0", "CPID\t1", "CPID\t1"],            # repeated handshake
    ["VERSION\t1\t0", "CPID\t1", "AUTH\tx\tPLAIN"],     # bad id
    ["VERSION\t1\t0", "CPID\t1", ""],                   # empty line
    ["VERSION\t1\t0", "CPID\t1", "AUTH\t1\tPL\0AIN"],   # NUL
])
def test_out_of_order_or_malformed_closes(sock, lines):
    c = Client(sock, hello=False)
    for line in lines:
        c.send(line)
    assert c.closed()


def test_overlong_line_closes(checker):
    c = Client(checker(max_line=1024))
    c.send("AUTH\t1\tPLAIN\tresp=" + "A" * 4000)
    assert c.closed()


def test_database_down_is_temporary(lab, sock, build, tmp_path):
    c = Client(sock)
    conf = tmp_path / "auth0.conf"
    lab.db_stop()
    try:
        c.send(f"AUTH\t1\tPLAIN\tresp={plain(*ALICE)}")
        r = c.line().split("\t")
        assert r[:2] == ["FAIL", "1"] and "temp" in r, r
        t = subprocess.run([build / "tests/tools/sm-auth-client", "-c", conf, *ALICE],
                           capture_output=True, text=True, timeout=30)
        assert t.returncode == 75 and t.stdout.startswith("tempfail"), t.stdout
        t = subprocess.run([build / "handlers/auth-checker/auth-checker", "-c", conf, "--test", ALICE[0]],
                           input="alice-secret\n", capture_output=True, text=True, timeout=30)
        assert t.returncode == 75 and "database" in t.stdout, t.stdout
        r = run_checkpassword(build, conf, b"alice@example.com\0alice-secret\0123\0", ["/bin/true"])
        assert r.returncode == 111
        # a protocol 1.0 client (Postfix) gets a closed connection: the one
        # temporary signal it understands (454 4.7.0)
        old = Client(sock, minor=0)
        old.send(f"AUTH\t1\tPLAIN\tresp={plain(*ALICE)}")
        assert old.closed()
    finally:
        lab.db_start()
    c.send(f"AUTH\t2\tPLAIN\tresp={plain(*ALICE)}")
    assert c.line() == "OK\t2\tuser=alice@example.com"
    old = Client(sock, minor=0)
    old.send(f"AUTH\t1\tPLAIN\tresp={plain(*ALICE)}")
    assert old.line() == "OK\t1\tuser=alice@example.com"


# -- the client library -----------------------------------------------------

def client_tool(build, conf, *args):
    return subprocess.run([build / "tests/tools/sm-auth-client", "-c", conf, *args],
                          capture_output=True, text=True, timeout=30)


def test_auth_client_library(sock, build, tmp_path):
    conf = tmp_path / "auth0.conf"
    r = client_tool(build, conf, "alice@Example.COM", "alice-secret")
    assert (r.returncode, r.stdout) == (0, "ok alice@example.com\n")
    r = client_tool(build, conf, "alice@example.com", "bad")
    assert (r.returncode, r.stdout) == (1, "refused\n")
    r = client_tool(build, conf, "--login", "bob@example.com", "bob-secret")
    assert r.returncode == 0 and r.stdout.splitlines() == ["mechs PLAIN LOGIN", "ok bob@example.com"]
    r = client_tool(build, conf, "--login", "bob@example.com", "bad")
    assert r.returncode == 1
    r = client_tool(build, conf, "--rip", "198.51.100.7", "--lip", "192.0.2.1", *ALICE)
    assert (r.returncode, r.stdout) == (1, "refused\n")
    r = client_tool(build, conf, "--secured", "--rip", "198.51.100.7", "--lip", "192.0.2.1", *ALICE)
    assert r.returncode == 0
    # nobody listening: temporary
    broken = tmp_path / "broken.conf"
    broken.write_text(conf.read_text().replace(str(sock), str(tmp_path / "nothing.sock")))
    r = client_tool(build, broken, *ALICE)
    assert (r.returncode, r.stdout) == (75, "tempfail\n")


# -- checkpassword ----------------------------------------------------------

def run_checkpassword(build, conf, payload, prog):
    """Runs checkpassword mode with PAYLOAD on fd 3 (a pipe, moved there by
    sh so that no other open fd of ours can take the number)."""
    return subprocess.run(["/bin/sh", "-c", 'exec "$@" 3<&0 </dev/null', "sh",
                           build / "handlers/auth-checker/auth-checker", "-c", conf,
                           "--checkpassword", *prog],
                          input=payload, capture_output=True, timeout=30,
                          env={"PATH": "/usr/bin:/bin"})


def test_checkpassword(lab, build, tmp_path):
    conf = make_config(lab, tmp_path / "cp.conf")
    r = run_checkpassword(build, conf, b"alice@EXAMPLE.com\0alice-secret\0" b"1700000000\0", ["/usr/bin/env"])
    assert r.returncode == 0, r.stderr
    env = dict(line.split("=", 1) for line in r.stdout.decode().splitlines())
    assert env["USER"] == "alice@example.com"
    assert env["HOME"] == str(lab.mail / "example.com" / "alice")
    # without the trailing timestamp
    r = run_checkpassword(build, conf, b"bob@example.com\0bob-secret\0", ["/usr/bin/env"])
    assert r.returncode == 0 and b"USER=bob@example.com" in r.stdout
    r = run_checkpassword(build, conf, b"alice@example.com\0wrong\0123\0", ["/usr/bin/env"])
    assert (r.returncode, r.stdout) == (1, b"")
    r = run_checkpassword(build, conf, b"nobody@example.com\0x\0123\0", ["/usr/bin/env"])
    assert r.returncode == 1
    r = run_checkpassword(build, conf, b"no-nul-at-all", ["/usr/bin/env"])
    assert r.returncode == 1
    r = run_checkpassword(build, conf, b"x" * 600, ["/usr/bin/env"])
    assert r.returncode == 1
    # program arguments are passed on, options included
    r = run_checkpassword(build, conf, b"alice@example.com\0alice-secret\0", ["/bin/sh", "-c", "echo $USER; exit 7"])
    assert (r.returncode, r.stdout) == (7, b"alice@example.com\n")
    r = subprocess.run([build / "handlers/auth-checker/auth-checker", "-c", conf, "--checkpassword"],
                       capture_output=True, timeout=10)
    assert r.returncode == 2


def test_checkpassword_without_fd3(lab, build, tmp_path):
    conf = make_config(lab, tmp_path / "cp.conf")
    r = subprocess.run([build / "handlers/auth-checker/auth-checker", "-c", conf,
                        "--checkpassword", "/bin/true"], capture_output=True, timeout=10, close_fds=True)
    assert r.returncode == 2


# -- --test and hashes ------------------------------------------------------

def by_hand(build, conf, user, password):
    return subprocess.run([build / "handlers/auth-checker/auth-checker", "-c", conf, "--test", user],
                          input=password + "\n", capture_output=True, text=True, timeout=30)


def test_by_hand(lab, build, tmp_path):
    conf = make_config(lab, tmp_path / "t.conf")
    r = by_hand(build, conf, "alice@example.com", "alice-secret")
    assert r.returncode == 0 and "matches" in r.stdout and "SHA512-CRYPT" in r.stdout
    r = by_hand(build, conf, "alice@example.com", "wrong")
    assert r.returncode == 1 and "wrong password" in r.stdout and "SHA512-CRYPT" in r.stdout
    r = by_hand(build, conf, "nobody@example.com", "x")
    assert r.returncode == 1 and "no such user" in r.stdout
    r = subprocess.run([build / "handlers/auth-checker/auth-checker", "--help"], capture_output=True, text=True)
    assert r.returncode == 0 and r.stdout.startswith("usage:")


@pytest.fixture
def test_domain(lab):
    lab.sql("INSERT INTO virtual_domains (name) VALUES ('authtest.example')")
    yield "authtest.example"
    lab.sql("DELETE FROM virtual_users WHERE email LIKE '%@authtest.example'")
    lab.sql("DELETE FROM virtual_domains WHERE name = 'authtest.example'")


def add_user(lab, email, stored):
    dom = email.split("@")[1]
    lab.sql(f"INSERT INTO virtual_users (domain_id, email, password) SELECT id, '{email}', '{stored}' "
            f"FROM virtual_domains WHERE name = '{dom}'")


def test_unsupported_hash(lab, build, tmp_path, test_domain, checker):
    add_user(lab, f"locked@{test_domain}", "{MD4}0123456789abcdef")
    conf = make_config(lab, tmp_path / "t.conf")
    r = by_hand(build, conf, f"locked@{test_domain}", "x")
    assert r.returncode == 1 and "unsupported" in r.stdout
    c = Client(checker())
    c.send(f"AUTH\t1\tPLAIN\tresp={plain(f'locked@{test_domain}', 'x')}")
    assert c.line().startswith("FAIL\t1")


def test_doveadm_hash_verifies_here(lab, build, tmp_path, test_domain, checker):
    stored = subprocess.run(["doveadm", "pw", "-s", "SHA512-CRYPT", "-p", "dove-secret"],
                            capture_output=True, text=True, check=True).stdout.strip()
    assert stored.startswith("{SHA512-CRYPT}$6$")
    add_user(lab, f"dove@{test_domain}", stored)
    conf = make_config(lab, tmp_path / "t.conf")
    r = by_hand(build, conf, f"dove@{test_domain}", "dove-secret")
    assert r.returncode == 0, r.stdout
    c = Client(checker())
    c.send(f"AUTH\t1\tPLAIN\tresp={plain(f'dove@{test_domain}', 'dove-secret')}")
    assert c.line() == f"OK\t1\tuser=dove@{test_domain}"


@pytest.mark.parametrize("scheme", ["SHA512-CRYPT", "SHA256-CRYPT", "BLF-CRYPT", "YESCRYPT"])
def test_our_hash_verifies_in_doveadm(build, scheme):
    made = subprocess.run([build / "tests/tools/sm-auth-client", "--hash", scheme, "our-secret"],
                          capture_output=True, text=True, check=True).stdout.strip()
    ok = subprocess.run(["doveadm", "pw", "-t", made, "-p", "our-secret"], capture_output=True, text=True)
    assert ok.returncode == 0, (made, ok.stderr)
    bad = subprocess.run(["doveadm", "pw", "-t", made, "-p", "other"], capture_output=True, text=True)
    assert bad.returncode != 0


def test_lookup_account_cannot_read_passwords(lab):
    secret = (lab.dir / "secrets" / "lookup").read_text().strip()
    r = subprocess.run(["mariadb", "--no-defaults", "-u", "sockmail_lookup", f"-p{secret}",
                        f"--socket={lab.mysql_socket}", "-N", "-B", "mailserver",
                        "-e", "SELECT password FROM virtual_users LIMIT 1"],
                       capture_output=True, text=True)
    assert r.returncode != 0 and "denied" in r.stderr.lower(), r
    r = subprocess.run(["mariadb", "--no-defaults", "-u", "sockmail_lookup", f"-p{secret}",
                        f"--socket={lab.mysql_socket}", "-N", "-B", "mailserver",
                        "-e", "SELECT email FROM virtual_users WHERE email='alice@example.com'"],
                       capture_output=True, text=True)
    assert r.stdout.strip() == "alice@example.com", r
