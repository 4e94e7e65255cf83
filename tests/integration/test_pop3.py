"""pop3-handler with real clients: poplib (every command, stls(), POP3_SSL),
curl pop3:// and pop3s://, openssl s_client -starttls pop3, fetchmail
(keep + UIDL, twice), and real Dovecot POP3 on the same Maildir (the same
UIDLs). Logins go through a real auth-checker against the lab's MariaDB."""
import os
import poplib
import re
import shutil
import socket
import ssl
import subprocess
import time

import pytest

from conftest import free_port

EXE = "handlers/pop3-handler/pop3-handler"
ALICE = ("alice@example.com", "alice-secret")

# Stored with bare LF, a line that starts with a dot, and no final newline
# on the last message.
MSGS = [
    b"From: a@example.com\nSubject: one\n\nline 1\n.dotted\n..two dots\nlast\n",
    b"Subject: two\r\n\r\nalready CRLF\r\n",
    b"Subject: three\n\nb1\nb2\nb3\nno final newline",
]


def ctx():
    c = ssl.create_default_context()
    c.check_hostname = False
    c.verify_mode = ssl.CERT_NONE
    return c


def wire(data):
    """What RETR must send for stored DATA (before dot-stuffing)."""
    out = re.sub(rb"(?<!\r)\n", b"\r\n", data)
    if data and not data.endswith(b"\n"):
        out += b"\r\n"
    return out


@pytest.fixture
def pop(lab, build, activate, tmp_path):
    """start(*args, auth={}, pop3={}) -> (port, maildir of alice, conf)."""
    def start(*args, auth=None, pop3=None, mail=None):
        sock = tmp_path / "auth.sock"
        conf = tmp_path / "pop.conf"
        mail = mail or tmp_path / "mail"
        text = re.sub(r"(?m)^mail_location = .*$", f"mail_location = {mail}/%d/%n",
                      lab.config.read_text())
        assert f"mail_location = {mail}/" in text
        text += "[auth]\n" + "".join(f"{k} = {v}\n" for k, v in
                                     {"socket": sock, "failure_delay": 0, **(auth or {})}.items())
        text += "[pop3]\n" + "".join(f"{k} = {v}\n" for k, v in (pop3 or {}).items())
        conf.write_text(text)
        if not sock.exists():
            activate([build / "handlers/auth-checker/auth-checker", "-c", conf], unix=sock)
        port = free_port()
        activate([build / EXE, "-c", conf, *args], port=port)
        return port, mail / "example.com" / "alice", conf
    return start


def fill(maildir, msgs=MSGS, t0=1700000000):
    for sub in ("new", "cur", "tmp"):
        (maildir / sub).mkdir(parents=True, exist_ok=True)
    names = []
    for i, m in enumerate(msgs):
        name = f"{t0 + i}.M{i}P1.lab,S={len(m)}"
        (maildir / "new" / name).write_bytes(m)
        names.append(name)
    return names


def kept(md):
    """Messages in the Maildir (after a QUIT they are in cur/)."""
    return len(list((md / "new").iterdir())) + len(list((md / "cur").iterdir()))


def login(port, tls="stls"):
    if tls == "ssl":
        p = poplib.POP3_SSL("127.0.0.1", port, context=ctx(), timeout=20)
    else:
        p = poplib.POP3("127.0.0.1", port, timeout=20)
        if tls == "stls":
            p.stls(context=ctx())
    p.user(ALICE[0])
    p.pass_(ALICE[1])
    return p


def test_poplib_every_command(pop):
    port, md, _ = pop()
    fill(md)
    p = poplib.POP3("127.0.0.1", port, timeout=20)
    caps = p.capa()
    assert "STLS" in caps and "TOP" in caps and "UIDL" in caps and "RESP-CODES" in caps
    assert "PIPELINING" in caps and "AUTH-RESP-CODE" in caps and "IMPLEMENTATION" in caps
    assert "USER" not in caps and "SASL" not in caps  # no plaintext before TLS
    with pytest.raises(poplib.error_proto, match=r"\[AUTH\]"):
        p.user(ALICE[0])
    p.stls(context=ctx())
    caps = p.capa()
    assert "STLS" not in caps and "USER" in caps and caps["SASL"] == ["PLAIN", "LOGIN"]
    p.user(ALICE[0])
    assert p.pass_(ALICE[1]).startswith(b"+OK")
    total = sum(len(wire(m)) for m in MSGS)
    assert p.stat() == (3, total)
    _, lines, _ = p.list()
    assert lines == [f"{i + 1} {len(wire(m))}".encode() for i, m in enumerate(MSGS)]
    assert p.list(2).split() == [b"+OK", b"2", str(len(wire(MSGS[1]))).encode()]
    uidls = p.uidl()[1]
    assert len(uidls) == 3
    for i, u in enumerate(uidls):
        n, uid = u.split()
        assert n == str(i + 1).encode() and re.fullmatch(rb"[0-9a-f]{16}", uid)
        assert int(uid[:8], 16) == i + 1  # Dovecot's %08Xu%08Xv: lower-case hex (its %X)
    assert len({u.split()[1][8:] for u in uidls}) == 1
    # RETR: CRLF, dot-stuffing undone by poplib, sizes = bytes sent
    for i, m in enumerate(MSGS):
        resp, lines, octets = p.retr(i + 1)
        assert b"\r\n".join(lines) + b"\r\n" == wire(m)
        assert resp.startswith(f"+OK {len(wire(m))} octets".encode())
    # TOP
    _, lines, _ = p.top(1, 0)
    assert lines == [b"From: a@example.com", b"Subject: one", b""]
    _, lines, _ = p.top(1, 2)
    assert lines[-2:] == [b"line 1", b".dotted"]
    _, lines, _ = p.top(3, 100)
    assert lines[-1] == b"no final newline"
    assert p.noop().startswith(b"+OK")
    p.dele(1)
    with pytest.raises(poplib.error_proto, match="deleted"):
        p.retr(1)
    assert p.stat()[0] == 2
    p.rset()
    assert p.stat()[0] == 3
    p.dele(2)
    assert p.quit().startswith(b"+OK")
    assert kept(md) == 2
    # the UIDLs stay across sessions
    p = login(port)
    assert p.uidl()[1] == [b"1 " + uidls[0].split()[1], b"2 " + uidls[2].split()[1]]
    p.quit()
    assert (md / "dovecot-uidlist").read_text().startswith("3 V")


def test_raw_dot_stuffing_and_errors(pop):
    port, md, _ = pop(auth={"allow_plaintext": "yes"})
    fill(md)
    s = socket.create_connection(("127.0.0.1", port), timeout=20)
    f = s.makefile("rb")
    assert f.readline().startswith(b"+OK")

    def cmd(line, multi=False):
        s.sendall(line + b"\r\n")
        first = f.readline()
        body = []
        if multi and first.startswith(b"+OK"):
            while True:
                l = f.readline()
                assert l.endswith(b"\r\n")
                if l == b".\r\n":
                    break
                body.append(l)
        return first, body

    assert cmd(b"STAT")[0].startswith(b"-ERR")
    assert cmd(b"RETR 1")[0].startswith(b"-ERR")
    assert cmd(b"PASS x")[0].startswith(b"-ERR No USER")
    assert cmd(b"USER alice@example.com")[0].startswith(b"+OK")
    assert cmd(b"PASS wrong")[0].startswith(b"-ERR [AUTH]")
    assert cmd(b"USER alice@example.com")[0].startswith(b"+OK")
    assert cmd(b"PASS alice-secret")[0].startswith(b"+OK")
    first, body = cmd(b"RETR 1", multi=True)
    assert b"..dotted\r\n" in body and b"...two dots\r\n" in body
    for bad in (b"RETR 0", b"RETR 4", b"RETR -1", b"RETR 99999999999999999999", b"RETR x",
                b"RETR", b"LIST 1 2", b"TOP 1", b"TOP 1 -1", b"DELE 0", b"USER x", b"STLS",
                b"FOO", b"X" * 600):
        assert cmd(bad)[0].startswith(b"-ERR"), bad
    assert cmd(b"UIDL 3")[0].startswith(b"+OK 3 ")
    s.close()


def test_dropped_connection_deletes_nothing(pop):
    port, md, _ = pop()
    fill(md)
    p = login(port)
    p.dele(1)
    p.dele(2)
    p.sock.close()
    time.sleep(0.5)
    assert len(list((md / "new").iterdir())) == 3
    p = login(port)
    assert p.stat()[0] == 3
    p.quit()


def test_two_sessions_snapshot(pop):
    port, md, _ = pop()
    fill(md)
    a, b = login(port), login(port)
    a.dele(1)
    b.dele(1)
    b.dele(2)
    assert a.quit().startswith(b"+OK")
    assert b.quit().startswith(b"+OK")  # message 1 already gone: fine
    fill(md, [b"Subject: new\n\nnew\n"], t0=1700000100)
    c = login(port)
    assert c.stat()[0] == 2  # message 3 and the new one
    c.quit()


def test_auth_plain_login_and_ssl(pop):
    port, md, _ = pop("--tls")
    fill(md)
    p = poplib.POP3_SSL("127.0.0.1", port, context=ctx(), timeout=20)
    import base64
    ir = base64.b64encode(b"\0alice@example.com\0alice-secret").decode()
    assert p._shortcmd(f"AUTH PLAIN {ir}").startswith(b"+OK")
    assert p.stat()[0] == 3
    p.quit()
    p = poplib.POP3_SSL("127.0.0.1", port, context=ctx(), timeout=20)
    r = p._shortcmd("AUTH LOGIN")
    assert r.startswith(b"+ ")
    r = p._shortcmd(base64.b64encode(b"alice@example.com").decode())
    assert r.startswith(b"+ ")
    assert p._shortcmd(base64.b64encode(b"alice-secret").decode()).startswith(b"+OK")
    p.quit()
    p = poplib.POP3_SSL("127.0.0.1", port, context=ctx(), timeout=20)
    with pytest.raises(poplib.error_proto, match=r"\[AUTH\]"):
        p._shortcmd("AUTH PLAIN " + base64.b64encode(b"\0alice@example.com\0nope").decode())
    p.quit()


def test_database_down_is_sys_temp(lab, pop):
    port, md, _ = pop("--tls")
    lab.db_stop()
    try:
        p = poplib.POP3_SSL("127.0.0.1", port, context=ctx(), timeout=30)
        p.user(ALICE[0])
        with pytest.raises(poplib.error_proto, match=r"\[SYS/TEMP\]"):
            p.pass_(ALICE[1])
        p.quit()
    finally:
        lab.db_start()


def test_curl_and_openssl(pop, tmp_path):
    if not shutil.which("curl"):
        pytest.skip("curl missing")
    port, md, conf = pop()
    fill(md)
    r = subprocess.run(["curl", "-sS", "--ssl-reqd", "-k", "-u", f"{ALICE[0]}:{ALICE[1]}",
                        f"pop3://127.0.0.1:{port}/1"], capture_output=True, timeout=30)
    assert r.returncode == 0, r.stderr
    assert r.stdout == wire(MSGS[0])
    r = subprocess.run(["curl", "-sS", "--ssl-reqd", "-k", "-u", f"{ALICE[0]}:{ALICE[1]}",
                        f"pop3://127.0.0.1:{port}/"], capture_output=True, timeout=30)
    assert r.stdout.split(b"\r\n")[:3] == [f"{i + 1} {len(wire(m))}".encode() for i, m in enumerate(MSGS)]
    r = subprocess.run(["openssl", "s_client", "-quiet", "-starttls", "pop3", "-connect",
                        f"127.0.0.1:{port}"], input=b"CAPA\r\nUSER alice@example.com\r\n"
                       b"PASS alice-secret\r\nSTAT\r\nQUIT\r\n", capture_output=True, timeout=30)
    assert b"+OK Logged in." in r.stdout and b"+OK 3 " in r.stdout, r.stdout


def test_curl_pop3s(pop):
    if not shutil.which("curl"):
        pytest.skip("curl missing")
    port, md, _ = pop("--tls")
    fill(md)
    r = subprocess.run(["curl", "-sS", "-k", "-u", f"{ALICE[0]}:{ALICE[1]}",
                        f"pop3s://127.0.0.1:{port}/3"], capture_output=True, timeout=30)
    assert r.returncode == 0, r.stderr
    assert r.stdout == wire(MSGS[2])


@pytest.mark.parametrize("mode", ["stls", "pop3s"])
def test_fetchmail_keep_twice(pop, tmp_path, mode):
    if not shutil.which("fetchmail"):
        pytest.skip("fetchmail missing")
    port, md, _ = pop(*(["--tls"] if mode == "pop3s" else []))
    fill(md)
    out = tmp_path / "delivered"
    out.mkdir()
    mda = tmp_path / "mda.sh"
    mda.write_text(f"#!/bin/sh\ncat > {out}/$(date +%s%N)\n")
    mda.chmod(0o755)
    rc = tmp_path / "fetchmailrc"
    # pop3s: TLS from the start; stls: "sslproto" without "ssl" makes
    # fetchmail require STLS.
    tls = "ssl" if mode == "pop3s" else "sslproto 'tls1.2+'"
    rc.write_text(f"poll 127.0.0.1 port {port} proto pop3 uidl\n"
                  f"  user '{ALICE[0]}' password '{ALICE[1]}' keep {tls} no sslcertck\n"
                  f"  mda '{mda}'\n")
    rc.chmod(0o600)
    env = dict(os.environ, HOME=str(tmp_path), FETCHMAILHOME=str(tmp_path))

    def run():
        return subprocess.run(["fetchmail", "-f", str(rc), "-v", "--nosyslog", "--nodetach",
                               "--idfile", str(tmp_path / "ids")], env=env,
                              capture_output=True, text=True, timeout=60)
    r = run()
    assert r.returncode == 0, r.stdout + r.stderr
    if mode == "stls":
        assert "POP3> STLS" in r.stdout + r.stderr
    assert len(list(out.iterdir())) == 3
    r = run()
    assert r.returncode == 1, r.stdout + r.stderr  # 1: no new mail
    assert len(list(out.iterdir())) == 3
    assert kept(md) == 3  # kept on the server


def dovecot_uidls(port):
    p = poplib.POP3("127.0.0.1", port, timeout=20)
    p.user(ALICE[0])
    p.pass_(ALICE[1])
    u = p.uidl()[1]
    p.quit()
    return u


def test_same_uidls_as_dovecot(lab, pop, tmp_path):
    """Dovecot 2.3 (Debian's dovecot-pop3d, default pop3_uidl_format
    %08Xu%08Xv) and pop3-handler on one Maildir list the same UIDLs, whoever
    numbered the messages first."""
    if not os.path.exists("/usr/sbin/dovecot") or not os.path.exists("/usr/lib/dovecot/pop3"):
        pytest.skip("dovecot-pop3d missing")
    from dovecot_lab import DovecotLab
    mail = tmp_path / "mail"
    mail.mkdir()
    port, md, _ = pop(auth={"allow_plaintext": "yes"}, mail=mail)
    dv = DovecotLab(tmp_path / "dovecot", lab, protocols=("pop3",), mail_root=mail)
    fill(md)

    def own():
        for root, dirs, files in os.walk(mail):
            for n in dirs + files:
                os.chown(os.path.join(root, n), dv.mail_uid, dv.mail_gid)
    own()
    with dv:
        first = dovecot_uidls(dv.pop3_port)  # Dovecot numbers them
        assert len(first) == 3
        p = login(port, tls=None)
        assert p.uidl()[1] == first
        p.quit()
        # new mail numbered by sockmail first, then read by Dovecot
        fill(md, [b"Subject: four\n\n4\n", b"Subject: five\n\n5\n"], t0=1700000200)
        p = login(port, tls=None)
        ours = p.uidl()[1]
        p.quit()
        own()
        assert len(ours) == 5 and ours[:3] == first
        assert dovecot_uidls(dv.pop3_port) == ours
        # new mail numbered by Dovecot, including an older-timestamped file
        fill(md, [b"Subject: six\n\n6\n"], t0=1700000300)
        fill(md, [b"Subject: seven\n\n7\n"], t0=1600000000)
        own()
        theirs = dovecot_uidls(dv.pop3_port)
        p = login(port, tls=None)
        assert p.uidl()[1] == theirs
        p.quit()
    # sockmail alone on a fresh Maildir, then Dovecot: the same
    md2 = mail / "example.com" / "alice"
    shutil.rmtree(md2)
    fill(md2)
    p = login(port, tls=None)
    ours = p.uidl()[1]
    p.quit()
    own()
    with DovecotLab(tmp_path / "dovecot2", lab, protocols=("pop3",), mail_root=mail) as dv2:
        assert dovecot_uidls(dv2.pop3_port) == ours


def listing(md):
    return {sub: sorted(os.listdir(md / sub)) for sub in ("new", "cur")}


def test_quit_leaves_the_maildir_as_dovecot_does(lab, pop, tmp_path):
    """The same sessions against pop3-handler and real Dovecot POP3, each
    on its own copy of one Maildir, leave the same file names: at QUIT
    everything moves from new/ to cur/ (":2,"), RETR'd messages get S, TOP
    marks nothing, flags already there stay in order, DELE'd ones go."""
    if not os.path.exists("/usr/sbin/dovecot") or not os.path.exists("/usr/lib/dovecot/pop3"):
        pytest.skip("dovecot-pop3d missing")
    from dovecot_lab import DovecotLab
    ours_root, theirs_root = tmp_path / "ours", tmp_path / "theirs"
    port, md, _ = pop(auth={"allow_plaintext": "yes"}, mail=ours_root)
    dmd = theirs_root / "example.com" / "alice"
    for m in (md, dmd):
        fill(m, MSGS + [b"Subject: flagged\n\nf\n"])
        # A message an IMAP client already flagged (F, R), in cur/.
        (m / "cur" / "1600000000.M9P1.lab,S=14:2,FR").write_bytes(b"Subject: x\n\nx\n")
    dv = DovecotLab(tmp_path / "dovecot", lab, protocols=("pop3",), mail_root=theirs_root)
    for root, dirs, files in os.walk(theirs_root):
        for n in dirs + files:
            os.chown(os.path.join(root, n), dv.mail_uid, dv.mail_gid)

    def session(p):
        uidl = p.uidl()[1]
        p.top(2, 0)
        p.retr(3)
        p.retr(1)          # the flagged one (oldest)
        p.dele(4)
        p.quit()
        return uidl

    with dv:
        theirs = dovecot_uidls(dv.pop3_port)
        d = poplib.POP3("127.0.0.1", dv.pop3_port, timeout=20)
        d.user(ALICE[0])
        d.pass_(ALICE[1])
        session(d)
    ours = session(login(port, tls=None))
    # Same numbers and UIDs; the UIDVALIDITY half differs (two Maildirs).
    assert [u[:-8] for u in ours] == [u[:-8] for u in theirs]
    assert listing(md) == listing(dmd)
    assert any(n.endswith(":2,FRS") for n in listing(md)["cur"]), listing(md)
    assert listing(md)["new"] == []
    # The UIDLs survive the renames.
    p = login(port, tls=None)
    after = {u.split()[1] for u in p.uidl()[1]}
    p.quit()
    assert after == {u.split()[1] for u in ours} - {ours[3].split()[1]}


def test_dropped_session_and_mark_seen_no_change_nothing(pop, tmp_path):
    port, md, _ = pop(auth={"allow_plaintext": "yes"})
    fill(md)
    before = listing(md)
    p = login(port, tls=None)
    p.retr(1)
    p.sock.close()      # no QUIT: no UPDATE state
    time.sleep(0.3)
    assert listing(md) == before
    port2, md2, _ = pop(auth={"allow_plaintext": "yes"}, pop3={"mark_seen": "no"},
                        mail=tmp_path / "mail2")
    fill(md2)
    before = listing(md2)
    p = login(port2, tls=None)
    p.retr(1)
    p.quit()
    assert listing(md2) == before
