"""lmtp-handler against Python's smtplib.LMTP and raw sockets, on a real lab."""
import concurrent.futures
import os
import re
import smtplib
import socket
import subprocess
import time

import pytest

from conftest import free_port

BODY = "Subject: test {tag}\r\nFrom: sender@example.org\r\n\r\nhello {tag}\r\n.leading dot\r\n"


@pytest.fixture
def lmtp(lab, build, activate, tmp_path):
    """An lmtp-handler under systemd-socket-activate --inetd on a unix socket."""
    sock = tmp_path / "lmtp.sock"
    activate([build / "handlers/lmtp-handler/lmtp-handler", "-c", lab.config], unix=sock)
    return str(sock)


def count(lab, addr):
    return len(lab.new_messages(addr))


def send(sock, rcpts, tag, sender="sender@example.org", body=None):
    """One LMTP transaction through smtplib's LMTP class, reading the one
    reply per accepted recipient after DATA that RFC 2033 requires (smtplib's
    sendmail reads only one). Returns {rcpt: (code, text)} of refusals."""
    refused = {}
    with smtplib.LMTP(str(sock)) as c:
        c.ehlo()
        assert c.mail(sender)[0] == 250
        accepted = []
        for r in rcpts:
            code, text = c.rcpt(r)
            if code == 250:
                accepted.append(r)
            else:
                refused[r] = (code, text)
        if not accepted:
            c.rset()
            return refused
        assert c.docmd("DATA")[0] == 354
        msg = smtplib._fix_eols(body if body is not None else BODY.format(tag=tag))
        c.send(smtplib._quote_periods(msg.encode()) + b".\r\n")
        for r in accepted:
            code, text = c.getreply()
            if code != 250:
                refused[r] = (code, text)
    return refused


def newest(lab, addr):
    return lab.new_messages(addr)[-1].read_bytes()


def test_deliver_to_user(lab, lmtp):
    before = count(lab, "alice@example.com")
    assert send(lmtp, ["alice@example.com"], "t1") == {}
    assert count(lab, "alice@example.com") == before + 1
    data = newest(lab, "alice@example.com")
    assert data.startswith(b"Return-Path: <sender@example.org>\nDelivered-To: alice@example.com\n")
    assert b"hello t1\n.leading dot\n" in data  # dot-unstuffed, LF line ends
    assert b"\r" not in data
    name = lab.new_messages("alice@example.com")[-1].name
    assert name.endswith(f",S={len(data)}")
    assert not os.listdir(lab.maildir("alice@example.com") / "tmp")


def test_alias_to_two_mailboxes(lab, lmtp):
    a, b = count(lab, "alice@example.com"), count(lab, "bob@example.com")
    assert send(lmtp, ["all@example.com"], "t2") == {}
    assert (count(lab, "alice@example.com"), count(lab, "bob@example.com")) == (a + 1, b + 1)
    assert b"Delivered-To: bob@example.com\n" in newest(lab, "bob@example.com")


def test_alias_chain(lab, lmtp):
    a, b = count(lab, "alice@example.com"), count(lab, "bob@example.com")
    assert send(lmtp, ["team@example.net"], "t3") == {}
    assert (count(lab, "alice@example.com"), count(lab, "bob@example.com")) == (a + 1, b + 1)


def test_case_insensitive_domain(lab, lmtp):
    a = count(lab, "alice@example.com")
    assert send(lmtp, ["alice@EXAMPLE.COM"], "t4") == {}
    assert count(lab, "alice@example.com") == a + 1


def test_unknown_user(lab, lmtp):
    code, msg = send(lmtp, ["nobody@example.com"], "t5")["nobody@example.com"]
    assert code == 550 and msg.startswith(b"5.1.1")


def test_remote_recipient_refused(lab, lmtp):
    assert send(lmtp, ["someone@elsewhere.example"], "t6")["someone@elsewhere.example"][0] == 550


def test_mixed_recipients(lab, lmtp):
    a, c = count(lab, "alice@example.com"), count(lab, "carol@example.net")
    refused = send(lmtp, ["alice@example.com", "ghost@example.com", "carol@example.net"], "t7")
    assert list(refused) == ["ghost@example.com"]
    assert (count(lab, "alice@example.com"), count(lab, "carol@example.net")) == (a + 1, c + 1)


def test_same_mailbox_twice_stored_once(lab, lmtp):
    a = count(lab, "alice@example.com")
    assert send(lmtp, ["alice@example.com", "postmaster@example.com"], "t8") == {}
    assert count(lab, "alice@example.com") == a + 1


class Raw:
    """A line-level LMTP client for what smtplib will not send."""

    def __init__(self, path):
        self.s = socket.socket(socket.AF_UNIX)
        self.s.settimeout(10)
        self.s.connect(path)
        self.f = self.s.makefile("rb")
        assert self.line().startswith(b"220 ")

    def line(self):
        return self.f.readline()

    def reply(self):
        """All lines of one (possibly multi-line) reply."""
        lines = [self.line()]
        while lines[-1][3:4] == b"-":
            lines.append(self.line())
        return lines

    def cmd(self, text):
        self.s.sendall(text if isinstance(text, bytes) else text.encode() + b"\r\n")
        return self.reply()

    def close(self):
        self.s.close()


def test_pipelining_and_per_recipient_replies(lab, lmtp):
    r = Raw(lmtp)
    r.cmd("LHLO test")
    r.s.sendall(b"MAIL FROM:<x@example.org>\r\nRCPT TO:<alice@example.com>\r\n"
                b"RCPT TO:<nobody@example.com>\r\nRCPT TO:<bob@example.com>\r\nDATA\r\n")
    assert r.line().startswith(b"250")
    assert r.line().startswith(b"250")
    assert r.line().startswith(b"550 5.1.1")
    assert r.line().startswith(b"250")
    assert r.line().startswith(b"354")
    r.s.sendall(b"Subject: p\r\n\r\nbody\r\n.\r\n")
    assert r.line().startswith(b"250 2.0.0 <alice@example.com>")
    assert r.line().startswith(b"250 2.0.0 <bob@example.com>")
    assert r.cmd("QUIT")[0].startswith(b"221")
    r.close()


def test_protocol_errors(lab, lmtp):
    r = Raw(lmtp)
    assert r.cmd("MAIL FROM:<x@example.org>")[0].startswith(b"503")
    assert r.cmd("HELO x")[0].startswith(b"500")
    ehlo = r.cmd("LHLO test")
    assert any(b"PIPELINING" in l for l in ehlo) and any(b"SIZE" in l for l in ehlo)
    assert r.cmd("RCPT TO:<alice@example.com>")[0].startswith(b"503")
    assert r.cmd("DATA")[0].startswith(b"503")
    assert r.cmd("VRFY alice@example.com")[0].startswith(b"502")
    assert r.cmd(b"NOOP\x00x\r\n")[0].startswith(b"500")
    assert r.cmd("X" * 5000)[0].startswith(b"500 5.5.2")
    assert r.cmd("NOOP")[0].startswith(b"250")   # resynchronised after the long line
    assert r.cmd("MAIL FROM:<x@example.org> SIZE=999999999999")[0].startswith(b"552 5.3.4")
    assert r.cmd("MAIL FROM:<x@example.org> FOO=BAR")[0].startswith(b"555")
    assert r.cmd("MAIL FROM:<x@example.org>")[0].startswith(b"250")
    assert r.cmd("MAIL FROM:<x@example.org>")[0].startswith(b"503")
    assert r.cmd("RSET")[0].startswith(b"250")
    assert r.cmd("QUIT")[0].startswith(b"221")
    r.close()


def test_too_many_errors_closes(lab, lmtp):
    r = Raw(lmtp)
    for _ in range(19):
        assert r.cmd("BOGUS")[0].startswith(b"5")
    last = r.cmd("BOGUS")
    assert last[0].startswith(b"5")
    assert r.line().startswith(b"421")
    assert r.line() == b""
    r.close()


def data_session(lmtp, payload, rcpt="alice@example.com"):
    r = Raw(lmtp)
    r.cmd("LHLO test")
    assert r.cmd("MAIL FROM:<x@example.org>")[0].startswith(b"250")
    assert r.cmd(f"RCPT TO:<{rcpt}>")[0].startswith(b"250")
    assert r.cmd("DATA")[0].startswith(b"354")
    r.s.sendall(payload)
    reply = r.line()
    r.close()
    return reply


def test_bare_lf_is_refused_and_not_an_end(lab, lmtp):
    a = count(lab, "alice@example.com")
    # "\n.\n" is no end of data: only CRLF.CRLF is (no smuggling).
    reply = data_session(lmtp, b"Subject: x\r\n\r\nline\n.\nMAIL FROM:<evil@example.org>\r\n.\r\n")
    assert reply.startswith(b"554 5.6.0")
    assert count(lab, "alice@example.com") == a


def test_nul_in_data_refused(lab, lmtp):
    a = count(lab, "alice@example.com")
    assert data_session(lmtp, b"Subject: x\r\n\r\na\x00b\r\n.\r\n").startswith(b"554")
    assert count(lab, "alice@example.com") == a


def test_message_too_big(lab, build, activate, tmp_path):
    conf = tmp_path / "small.conf"
    conf.write_text(lab.config.read_text() + "\n[lmtp]\nmax_message_size = 2K\n")
    sock = tmp_path / "small.sock"
    activate([build / "handlers/lmtp-handler/lmtp-handler", "-c", conf], unix=sock)
    a = count(lab, "alice@example.com")
    reply = data_session(str(sock), b"Subject: big\r\n\r\n" + b"x" * 3000 + b"\r\n.\r\n")
    assert reply.startswith(b"552 5.3.4")
    assert count(lab, "alice@example.com") == a
    assert data_session(str(sock), b"Subject: small\r\n\r\nok\r\n.\r\n").startswith(b"250")


def test_long_data_lines_are_kept(lab, lmtp):
    line = b"y" * 100000
    assert data_session(lmtp, b"Subject: long\r\n\r\n" + line + b"\r\n.\r\n").startswith(b"250")
    assert line + b"\n" in newest(lab, "alice@example.com")


def test_disconnect_during_data_stores_nothing(lab, lmtp):
    a = count(lab, "alice@example.com")
    r = Raw(lmtp)
    r.cmd("LHLO test")
    r.cmd("MAIL FROM:<x@example.org>")
    r.cmd("RCPT TO:<alice@example.com>")
    r.cmd("DATA")
    r.s.sendall(b"Subject: cut\r\n\r\npartial body")
    r.close()
    time.sleep(0.5)
    assert count(lab, "alice@example.com") == a
    assert not os.listdir(lab.maildir("alice@example.com") / "tmp")


def test_parallel_deliveries(lab, lmtp):
    a = count(lab, "carol@example.net")
    with concurrent.futures.ThreadPoolExecutor(max_workers=50) as ex:
        results = list(ex.map(lambda i: send(lmtp, ["carol@example.net"], f"par{i}"), range(50)))
    assert results == [{}] * 50
    files = lab.new_messages("carol@example.net")
    assert len(files) == a + 50
    assert len({f.name for f in files}) == len(files)
    # Other tests deliver to carol too: look only at this test's messages.
    bodies = {m.group(1) for f in files
              if (m := re.search(rb"\nhello (par\d+)\n", f.read_bytes()))}
    assert {f"par{i}".encode() for i in range(50)} <= bodies


def test_database_down_is_temporary(lab, lmtp):
    lab.db_stop()
    try:
        code, msg = send(lmtp, ["alice@example.com"], "dbdown")["alice@example.com"]
        assert code == 451 and msg.startswith(b"4.3.0")
    finally:
        lab.db_start()
    assert send(lmtp, ["alice@example.com"], "dbback") == {}


def test_tcp_and_listen_fds(lab, build, activate):
    """The same handler with the connection on fd 3 (LISTEN_FDS=1) over TCP."""
    port = free_port()
    activate([build / "handlers/lmtp-handler/lmtp-handler", "-c", lab.config], port=port, inetd=False)
    a = count(lab, "bob@example.com")
    with smtplib.LMTP("127.0.0.1", port) as c:
        assert c.sendmail("x@example.org", ["bob@example.com"], "Subject: fd3\r\n\r\nfd3\r\n") == {}
    assert count(lab, "bob@example.com") == a + 1
    assert b"from " in newest(lab, "bob@example.com") and b"127.0.0.1" in newest(lab, "bob@example.com")


def test_stdin_stdout(lab, build):
    """Run by hand: the session on a pipe, as in a terminal."""
    a = count(lab, "alice@example.com")
    script = (b"LHLO me\r\nMAIL FROM:<>\r\nRCPT TO:<alice@example.com>\r\nDATA\r\n"
              b"Subject: pipe\r\n\r\nvia pipe\r\n.\r\nQUIT\r\n")
    out = subprocess.run([build / "handlers/lmtp-handler/lmtp-handler", "-c", lab.config],
                         input=script, capture_output=True, timeout=20).stdout
    codes = [l[:3] for l in out.split(b"\r\n") if l and l[3:4] == b" "]
    assert codes == [b"220", b"250", b"250", b"250", b"354", b"250", b"221"]
    assert count(lab, "alice@example.com") == a + 1
    assert newest(lab, "alice@example.com").startswith(b"Return-Path: <>\n")


def test_help_and_bad_config(build, tmp_path):
    exe = build / "handlers/lmtp-handler/lmtp-handler"
    h = subprocess.run([exe, "--help"], capture_output=True, text=True)
    assert h.returncode == 0 and h.stdout.startswith("usage: lmtp-handler")
    assert subprocess.run([exe, "--bogus"], capture_output=True).returncode == 2
    bad = tmp_path / "bad.conf"
    bad.write_text("[lmtp]\nmax_line = lots\n")
    r = subprocess.run([exe, "-c", bad], input=b"", capture_output=True, timeout=10)
    assert r.stdout.startswith(b"421 4.3.5")


@pytest.fixture
def mounts():
    """mount(args...) that are undone at the end of the test (needs root)."""
    done = []

    def mount(*args):
        subprocess.run(["mount", *map(str, args)], check=True)
        done.append(str(args[-1]))

    yield mount
    for target in reversed(done):
        subprocess.run(["umount", "-l", target], check=False)


def test_read_only_maildir_is_temporary(lab, lmtp, mounts):
    new = lab.maildir("bob@example.com") / "new"
    send(lmtp, ["bob@example.com"], "exists")  # the Maildir exists
    before = count(lab, "bob@example.com")
    mounts("--bind", new, new)
    mounts("-o", "remount,bind,ro", new)
    code, _ = send(lmtp, ["bob@example.com"], "ro")["bob@example.com"]
    assert code in (451, 452)
    assert not os.listdir(lab.maildir("bob@example.com") / "tmp")
    subprocess.run(["umount", str(new)], check=True)
    assert send(lmtp, ["bob@example.com"], "rw-again") == {}
    assert count(lab, "bob@example.com") == before + 1


def test_disk_full_is_452(lab, build, activate, tmp_path, mounts):
    small = tmp_path / "full"
    small.mkdir()
    mounts("-t", "tmpfs", "-o", "size=64k", "tmpfs", small)
    conf = tmp_path / "full.conf"
    conf.write_text(lab.config.read_text().replace(f"mail_location = {lab.mail}/%d/%n",
                                                   f"mail_location = {small}/%d/%n"))
    sock = tmp_path / "full.sock"
    activate([build / "handlers/lmtp-handler/lmtp-handler", "-c", conf], unix=sock)
    big = "Subject: big\r\n\r\n" + ("z" * 1000 + "\r\n") * 200
    code, text = send(sock, ["alice@example.com"], "big", body=big)["alice@example.com"]
    assert code == 452 and text.startswith(b"4.3.1")
    md = small / "example.com/alice"
    assert not os.listdir(md / "new") and not os.listdir(md / "tmp")
    assert send(sock, ["alice@example.com"], "small") == {}   # small mail still fits
    assert len(os.listdir(md / "new")) == 1


def test_one_broken_maildir_does_not_fail_the_others(lab, lmtp, mounts):
    """The body is spooled in the first usable Maildir, not just the first."""
    md = lab.maildir("alice@example.com")
    send(lmtp, ["alice@example.com"], "exists")
    a, b = count(lab, "alice@example.com"), count(lab, "bob@example.com")
    mounts("--bind", md, md)
    mounts("-o", "remount,bind,ro", md)
    refused = send(lmtp, ["alice@example.com", "bob@example.com"], "half")
    subprocess.run(["umount", str(md)], check=True)
    assert list(refused) == ["alice@example.com"] and refused["alice@example.com"][0] in (451, 452)
    assert (count(lab, "alice@example.com"), count(lab, "bob@example.com")) == (a, b + 1)
