"""smtp-handler in mx mode against swaks, smtplib, curl, openssl and raw
sockets, on a real lab: local delivery through the queue, relay and
smuggling probes, limits, STARTTLS, BDAT, DSN/SMTPUTF8, and the queue as
the retry point when a Maildir fails after the 250."""
import os
import re
import smtplib
import socket
import ssl
import subprocess
import time

import pytest

from conftest import free_port

EXE = "handlers/smtp-handler/smtp-handler"


def start(activate, build, config, *args):
    port = free_port()
    activate([build / EXE, "-c", config, *args], port=port)
    return port


@pytest.fixture
def mx(lab, build, activate):
    return start(activate, build, lab.config, "--mode", "mx")


def count(lab, addr):
    return len(lab.new_messages(addr))


def newest(lab, addr):
    return lab.new_messages(addr)[-1].read_bytes()


def wait_count(lab, addr, n, timeout=5.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and count(lab, addr) < n:
        time.sleep(0.02)
    return count(lab, addr)


class Raw:
    """A plain socket that speaks SMTP line by line and reads whole
    (multi-line) replies."""

    def __init__(self, port, host="127.0.0.1"):
        self.s = socket.create_connection((host, port), timeout=20)
        self.buf = b""
        self.greeting = self.reply()

    def send(self, data):
        self.s.sendall(data if isinstance(data, bytes) else data.encode())

    def line(self):
        while b"\n" not in self.buf:
            chunk = self.s.recv(65536)
            if not chunk:
                raise EOFError(self.buf)
            self.buf += chunk
        line, self.buf = self.buf.split(b"\n", 1)
        return line.rstrip(b"\r").decode("utf-8", "replace")

    def reply(self):
        lines = [self.line()]
        while len(lines[-1]) > 3 and lines[-1][3] == "-":
            lines.append(self.line())
        return lines[-1]

    def cmd(self, text):
        self.send(text + "\r\n")
        return self.reply()

    def close(self):
        self.s.close()


def swaks(port, *args, timeout=60):
    return subprocess.run(["swaks", "--server", "127.0.0.1", "--port", str(port),
                           "--helo", "client.example.org", *args],
                          capture_output=True, text=True, timeout=timeout)


def test_help_and_usage(build):
    r = subprocess.run([build / EXE, "--help"], capture_output=True, text=True)
    assert r.returncode == 0 and r.stdout.startswith("usage: smtp-handler")
    r = subprocess.run([build / EXE], capture_output=True, text=True)
    assert r.returncode == 2 and "usage:" in r.stderr
    r = subprocess.run([build / EXE, "--mode", "relay"], capture_output=True, text=True)
    assert r.returncode == 2


def test_bad_config_is_421(build, tmp_path):
    bad = tmp_path / "bad.conf"
    bad.write_text("[smtp]\nmax_line = nonsense\n")
    r = subprocess.run([build / EXE, "-c", bad, "--mode", "mx"], input=b"QUIT\r\n",
                       capture_output=True, timeout=10)
    assert r.stdout.startswith(b"421 4.3.5")


def test_swaks_to_alice(lab, mx):
    before = count(lab, "alice@example.com")
    r = swaks(mx, "--to", "alice@example.com", "--from", "sender@example.org",
              "--header", "Subject: swaks t1", "--body", "hello t1\n.leading dot")
    assert r.returncode == 0, r.stdout
    assert "queued as" in r.stdout
    assert count(lab, "alice@example.com") == before + 1
    data = newest(lab, "alice@example.com")
    assert data.startswith(b"Return-Path: <sender@example.org>\nDelivered-To: alice@example.com\n"
                           b"Received: from client.example.org (127.0.0.1 [127.0.0.1])\n")
    assert b"by mail.example.test (sockmail) with ESMTP id " in data
    assert b"\tfor <alice@example.com>; " in data
    assert b"hello t1\n.leading dot\n" in data and b"\r" not in data
    name = lab.new_messages("alice@example.com")[-1].name
    assert name.endswith(f",S={len(data)}")
    # Delivered, so nothing is left in the queue.
    assert not [p for p in (lab.dir / "queue/msg").iterdir()]


def test_alias_to_two_mailboxes_once_each(lab, mx):
    a, b = count(lab, "alice@example.com"), count(lab, "bob@example.com")
    # all@ and alice@ in one transaction: alice gets ONE copy.
    r = swaks(mx, "--to", "all@example.com,alice@example.com", "--from", "s@example.org")
    assert r.returncode == 0, r.stdout
    assert (count(lab, "alice@example.com"), count(lab, "bob@example.com")) == (a + 1, b + 1)
    assert b"Delivered-To: bob@example.com\n" in newest(lab, "bob@example.com")
    assert b"\tfor <" not in newest(lab, "bob@example.com")  # two RCPTs: no "for"


def test_unknown_user_550(lab, mx):
    r = swaks(mx, "--to", "nobody@example.com", "--from", "s@example.org")
    assert r.returncode != 0
    assert "550 5.1.1 <nobody@example.com>" in r.stdout


def test_pipelining(lab, mx):
    before = count(lab, "bob@example.com")
    r = swaks(mx, "--pipeline", "--to", "bob@example.com", "--from", "s@example.org")
    assert r.returncode == 0, r.stdout
    assert count(lab, "bob@example.com") == before + 1


def test_smtplib_and_curl(lab, mx, tmp_path):
    before = count(lab, "carol@example.net")
    with smtplib.SMTP("127.0.0.1", mx, timeout=20) as c:
        c.ehlo("client.example.org")
        assert c.has_extn("pipelining") and c.has_extn("chunking") and c.has_extn("dsn")
        assert c.has_extn("size") and c.has_extn("smtputf8") and c.has_extn("enhancedstatuscodes")
        assert c.sendmail("s@example.org", ["carol@example.net"], b"Subject: lib\r\n\r\nhello lib\r\n") == {}
    msg = tmp_path / "m.txt"
    msg.write_bytes(b"Subject: curl\r\n\r\nhello curl\r\n")
    r = subprocess.run(["curl", "-sS", f"smtp://127.0.0.1:{mx}", "--mail-from", "s@example.org",
                        "--mail-rcpt", "carol@example.net", "-T", str(msg)],
                       capture_output=True, text=True, timeout=30)
    assert r.returncode == 0, r.stderr
    assert count(lab, "carol@example.net") == before + 2
    assert b"hello curl\n" in newest(lab, "carol@example.net")


@pytest.mark.parametrize("rcpt", [
    "<user@remote.example>",
    "<user%remote.example@example.com>",
    "<user!remote.example@example.com>",
    "<remote.example!user@example.com>",
    "<@example.com:user@remote.example>",
    "<@example.com,@example.net:user@remote.example>",
    '<"user@remote.example"@example.com>',
    "<user@remote.example@example.com>",
])
def test_no_open_relay(lab, mx, rcpt):
    c = Raw(mx)
    assert c.cmd("EHLO probe.example").startswith("250 ")
    assert c.cmd("MAIL FROM:<spam@example.org>").startswith("250 ")
    r = c.cmd(f"RCPT TO:{rcpt}")
    assert r[:3] in ("550", "554", "501", "553"), r
    if "remote.example>" in rcpt and rcpt.count("@") == 1:
        assert r.startswith("554 5.7.1") and "Relay access denied" in r
    # Nothing was accepted, so DATA is refused.
    assert c.cmd("DATA").startswith("554 5.5.1")
    c.close()
    assert not [p for p in (lab.dir / "queue/msg").glob("*.env")]


SMUGGLE = [b"\n.\n", b"\r.\r", b"\r\n.\n", b"\n.\r\n", b"\r\n.\r", b"\n.\r"]


@pytest.mark.parametrize("fake", SMUGGLE, ids=[repr(f) for f in SMUGGLE])
def test_smtp_smuggling_refused(lab, mx, fake):
    before = count(lab, "bob@example.com"), count(lab, "alice@example.com")
    c = Raw(mx)
    c.cmd("EHLO probe.example")
    assert c.cmd("MAIL FROM:<a@example.org>").startswith("250")
    assert c.cmd("RCPT TO:<alice@example.com>").startswith("250")
    assert c.cmd("DATA").startswith("354")
    # A second transaction hidden inside the first one's body.
    c.send(b"Subject: outer\r\n\r\nouter" + fake +
           b"MAIL FROM:<admin@example.com>\r\nRCPT TO:<bob@example.com>\r\nDATA\r\n"
           b"Subject: smuggled\r\n\r\nsmuggled\r\n.\r\n")
    r = c.reply()
    assert r.startswith("550 5.5.2"), r
    # The session is in step: the next command gets the next reply.
    assert c.cmd("NOOP").startswith("250")
    c.close()
    assert (count(lab, "bob@example.com"), count(lab, "alice@example.com")) == before


def test_bare_lf_allowed_by_config(lab, build, activate, tmp_path):
    conf = tmp_path / "lf.conf"
    conf.write_text(lab.config.read_text() + "[smtp]\naccept_bare_lf = yes\n")
    port = start(activate, build, conf, "--mode", "mx")
    before = count(lab, "alice@example.com")
    c = Raw(port)
    c.cmd("EHLO probe.example")
    c.cmd("MAIL FROM:<a@example.org>")
    c.cmd("RCPT TO:<alice@example.com>")
    c.cmd("DATA")
    c.send(b"Subject: lf\r\n\r\nline one\nline two\n.\nstill body\r\n.\r\n")
    assert c.reply().startswith("250 2.0.0")
    c.close()
    assert count(lab, "alice@example.com") == before + 1
    assert b"line one\nline two\n.\nstill body\n" in newest(lab, "alice@example.com")


def test_bdat(lab, mx):
    before = count(lab, "alice@example.com")
    c = Raw(mx)
    c.cmd("EHLO probe.example")
    c.cmd("MAIL FROM:<a@example.org> BODY=8BITMIME")
    c.cmd("RCPT TO:<alice@example.com>")
    part1 = b"Subject: bdat\r\n\r\nfirst line\r"  # a chunk may end inside CRLF
    part2 = b"\n.not stuffed\r\nlast\r\n"
    # Both chunks and their commands in one packet (pipelined).
    c.send(b"BDAT %d\r\n" % len(part1) + part1 + b"BDAT %d LAST\r\n" % len(part2) + part2)
    assert c.reply() == f"250 2.0.0 {len(part1)} octets received"
    assert c.reply().startswith("250 2.0.0 Ok: queued as")
    # BDAT without a transaction: the chunk is read and refused.
    c.send(b"BDAT 4 LAST\r\nQUIT")
    assert c.reply().startswith("503 5.5.1")
    assert c.cmd("NOOP").startswith("250")
    c.close()
    assert count(lab, "alice@example.com") == before + 1
    assert newest(lab, "alice@example.com").endswith(b"\n\nfirst line\n.not stuffed\nlast\n")


def test_bdat_smtplib_like_big(lab, mx):
    """A 3 MiB message in 64 KiB BDAT chunks."""
    before = count(lab, "bob@example.com")
    body = b"Subject: big bdat\r\n\r\n" + (b"x" * 998 + b"\r\n") * 3000
    c = Raw(mx)
    c.cmd("EHLO probe.example")
    c.cmd("MAIL FROM:<a@example.org>")
    c.cmd("RCPT TO:<bob@example.com>")
    chunks = [body[i:i + 65536] for i in range(0, len(body), 65536)]
    for i, ch in enumerate(chunks):
        last = b" LAST" if i == len(chunks) - 1 else b""
        c.send(b"BDAT %d%s\r\n" % (len(ch), last) + ch)
    for i in range(len(chunks) - 1):
        assert c.reply().startswith("250 2.0.0")
    assert "queued as" in c.reply()
    c.close()
    assert count(lab, "bob@example.com") == before + 1
    assert len(newest(lab, "bob@example.com")) > len(body) - 3001


def test_size_limits(lab, build, activate, tmp_path):
    conf = tmp_path / "size.conf"
    conf.write_text(lab.config.read_text() + "[smtp]\nmax_message_size = 100K\n")
    port = start(activate, build, conf, "--mode", "mx")
    before = count(lab, "alice@example.com")
    c = Raw(port)
    c.cmd("EHLO probe.example")
    assert c.cmd("MAIL FROM:<a@example.org> SIZE=200000").startswith("552 5.3.4")
    assert c.cmd("MAIL FROM:<a@example.org> SIZE=1000").startswith("250")
    c.cmd("RCPT TO:<alice@example.com>")
    c.cmd("DATA")
    c.send(b"Subject: big\r\n\r\n" + (b"y" * 1000 + b"\r\n") * 150 + b".\r\n")
    assert c.reply().startswith("552 5.3.4")
    # BDAT over the limit as well.
    c.cmd("MAIL FROM:<a@example.org>")
    c.cmd("RCPT TO:<alice@example.com>")
    big = b"z" * 150000
    c.send(b"BDAT %d LAST\r\n" % len(big) + big)
    assert c.reply().startswith("552 5.3.4")
    assert c.cmd("NOOP").startswith("250")
    c.close()
    assert count(lab, "alice@example.com") == before
    assert not [p for p in (lab.dir / "queue/msg").iterdir()]


def test_30_mib_message(lab, mx):
    before = count(lab, "bob@example.com")
    body = ("Subject: 30 MiB\r\n\r\n" + ("w" * 1022 + "\r\n") * (31 * 1024)).encode()
    with smtplib.SMTP("127.0.0.1", mx, timeout=60) as c:
        c.ehlo("client.example.org")
        assert c.has_extn("size")  # smtplib sends SIZE= itself
        assert c.sendmail("s@example.org", ["bob@example.com"], body) == {}
    assert count(lab, "bob@example.com") == before + 1
    assert lab.new_messages("bob@example.com")[-1].stat().st_size > 30 * 1024 * 1024


def test_too_many_recipients_and_long_line(lab, mx):
    c = Raw(mx)
    c.cmd("EHLO probe.example")
    c.cmd("MAIL FROM:<a@example.org>")
    # 10,000 RCPTs pipelined: the first 1000 (the default) are taken.
    c.send("".join("RCPT TO:<alice@example.com>\r\n" for _ in range(10000)))
    codes = [c.reply()[:9] for _ in range(10000)]
    assert codes[:1000] == ["250 2.1.5"] * 1000
    assert set(codes[1000:]) == {"452 4.5.3"}
    assert c.cmd("RSET").startswith("250")
    # A 100 KiB command line.
    assert c.cmd("NOOP " + "x" * 100 * 1024).startswith("500 5.5.2")
    assert c.cmd("NOOP").startswith("250")
    c.close()


def test_bad_commands_close(mx):
    c = Raw(mx)
    replies = [c.cmd("BOGUS") for _ in range(20)]
    assert set(r[:9] for r in replies) == {"500 5.5.2"}
    assert c.reply().startswith("421 4.7.0")
    with pytest.raises((EOFError, ConnectionError)):
        c.line()


def test_vrfy_expn_do_not_tell(mx):
    c = Raw(mx)
    c.cmd("EHLO probe.example")
    assert c.cmd("VRFY alice@example.com") == c.cmd("VRFY nobody@example.com")
    assert c.cmd("EXPN all@example.com").startswith("252")
    c.close()


def test_smtputf8_and_dsn_kept(lab, mx):
    """UTF-8 addresses end to end; DSN parameters are kept with the message
    (seen in the queue while a remote destination stays queued)."""
    lab.sql("INSERT INTO virtual_aliases (domain_id, source, destination) "
            "SELECT id, 'fwd@example.com', 'someone@remote.example' FROM virtual_domains "
            "WHERE name = 'example.com'")
    try:
        before = count(lab, "alice@example.com")
        c = Raw(mx)
        c.cmd("EHLO probe.example")
        assert c.cmd("MAIL FROM:<jörg@exämple.org> SMTPUTF8 RET=HDRS ENVID=env+2B1").startswith("250")
        assert c.cmd("RCPT TO:<alice@example.com> NOTIFY=SUCCESS,DELAY "
                     "ORCPT=rfc822;alice+40example.com").startswith("250")
        assert c.cmd("RCPT TO:<fwd@example.com> NOTIFY=NEVER").startswith("250")
        c.cmd("DATA")
        c.send("Subject: ütf\r\n\r\nhällo\r\n.\r\n".encode())
        r = c.reply()
        assert r.startswith("250 2.0.0 Ok: queued as ")
        qid = r.split()[-1]
        c.close()
        assert count(lab, "alice@example.com") == before + 1
        data = newest(lab, "alice@example.com")
        assert data.startswith("Return-Path: <jörg@exämple.org>\n".encode())
        assert b" with UTF8SMTP id " in data
        env = (lab.dir / "queue/msg" / f"{qid}.env").read_text()
        assert env.startswith("sockmail-queue 1\n")
        assert "ret=HDRS envid=env+2B2B1" in env  # the client's xtext, kept as sent
        assert re.search(r"^r D L dest=alice@example.com .*notify=SUCCESS,DELAY orcpt=rfc822;alice\+2B40example.com$",
                         env, re.M), env
        assert re.search(r"^r P R dest=someone@remote.example rcpt=fwd@example.com notify=NEVER", env, re.M)
        assert "smtputf8=1" in env and "from=j+C3+B6rg@ex+C3+A4mple.org" in env
        assert (lab.dir / "queue/msg" / f"{qid}.body").read_bytes() == "Subject: ütf\n\nhällo\n".encode()
    finally:
        lab.sql("DELETE FROM virtual_aliases WHERE source = 'fwd@example.com'")
        for p in (lab.dir / "queue/msg").iterdir():
            p.unlink()


def test_database_down_451(lab, mx):
    lab.db_stop()
    try:
        c = Raw(mx)
        c.cmd("EHLO probe.example")
        c.cmd("MAIL FROM:<a@example.org>")
        assert c.cmd("RCPT TO:<alice@example.com>").startswith("451 4.3.0")
        c.close()
    finally:
        lab.db_start()


# --- the queue as the retry point ---

def private_mail_and_queue(lab, tmp_path, location):
    """The lab's config with its own Maildir root (mail_location MAIL/LOCATION)
    and queue under TMP_PATH; returns (mail, queue, config path)."""
    mail, queue, conf = tmp_path / "mail", tmp_path / "queue", tmp_path / "q.conf"
    text = lab.config.read_text()
    text = re.sub(r"(?m)^mail_location = .*$", f"mail_location = {mail}/{location}", text)
    text = re.sub(r"(?m)^queue = .*$", f"queue = {queue}", text)
    conf.write_text(text)
    return mail, queue, conf


def test_maildir_failure_after_250_is_retried_from_queue(lab, build, activate, tmp_path):
    """alice's Maildir cannot be written when the message arrives (here: a
    file where her domain directory should be — the state a crash between
    the queue commit and the Maildir copy leaves is the same: committed,
    not in the Maildir). The client still gets 250 (the queue holds it),
    bob gets his copy at once; `--flush-queue` later delivers alice's, and
    bob's is not delivered twice."""
    mail, queue, conf = private_mail_and_queue(lab, tmp_path, "%d/%n/%n")
    (mail / "example.com").mkdir(parents=True)
    (mail / "example.com" / "alice").write_text("in the way\n")  # ENOTDIR for alice
    port = start(activate, build, conf, "--mode", "mx")
    r = swaks(port, "--to", "all@example.com", "--from", "s@example.org",
              "--header", "Subject: retry")
    assert r.returncode == 0, r.stdout
    bob = mail / "example.com/bob/bob/new"
    assert len(os.listdir(bob)) == 1
    envs = list((queue / "msg").glob("*.env"))
    assert len(envs) == 1
    env = envs[0].read_text()
    assert re.search(r"^r P L dest=alice@example.com ", env, re.M)
    assert re.search(r"^r D L dest=bob@example.com ", env, re.M)

    # Still broken: the flush leaves it queued and says so (exit 75).
    f = subprocess.run([build / EXE, "-c", conf, "--flush-queue"], capture_output=True, text=True)
    assert f.returncode == 75, f.stderr
    assert envs[0].exists()

    (mail / "example.com" / "alice").unlink()
    f = subprocess.run([build / EXE, "-c", conf, "--flush-queue"], capture_output=True, text=True)
    assert f.returncode == 0, f.stderr
    alice = mail / "example.com/alice/alice/new"
    assert len(os.listdir(alice)) == 1 and len(os.listdir(bob)) == 1
    data = (alice / os.listdir(alice)[0]).read_bytes()
    assert data.startswith(b"Return-Path: <s@example.org>\nDelivered-To: alice@example.com\nReceived: ")
    assert b"Subject: retry" in data
    assert not list((queue / "msg").iterdir())  # finished: both files gone


def test_one_mailbox_goes_straight_in_or_through_the_queue(lab, build, activate, tmp_path):
    """A message for one mailbox is stored straight into the Maildir: 250,
    the file in new/, nothing left in the queue. When that Maildir cannot
    be written, the same message takes the queue path: still 250, kept in
    the queue, delivered by the flush once the Maildir is fixed."""
    mail, queue, conf = private_mail_and_queue(lab, tmp_path, "%d/%n")
    port = start(activate, build, conf, "--mode", "mx")
    r = swaks(port, "--to", "bob@example.com", "--from", "s@example.org", "--header", "Subject: direct")
    assert r.returncode == 0 and "queued as" in r.stdout, r.stdout
    bob = mail / "example.com/bob/new"
    assert len(os.listdir(bob)) == 1
    assert (bob / os.listdir(bob)[0]).read_bytes().startswith(
        b"Return-Path: <s@example.org>\nDelivered-To: bob@example.com\nReceived: ")
    assert not list((queue / "msg").iterdir()) and not list((queue / "tmp").iterdir())

    (mail / "example.com" / "alice").write_text("in the way\n")  # ENOTDIR for alice
    r = swaks(port, "--to", "alice@example.com", "--from", "s@example.org", "--header", "Subject: deferred")
    assert r.returncode == 0 and "queued as" in r.stdout, r.stdout
    envs = list((queue / "msg").glob("*.env"))
    assert len(envs) == 1
    assert re.search(r"^r P L dest=alice@example.com ", envs[0].read_text(), re.M)
    (mail / "example.com" / "alice").unlink()
    f = subprocess.run([build / EXE, "-c", conf, "--flush-queue"], capture_output=True, text=True)
    assert f.returncode == 0, f.stderr
    alice = mail / "example.com/alice/new"
    assert len(os.listdir(alice)) == 1
    assert b"Subject: deferred" in (alice / os.listdir(alice)[0]).read_bytes()
    assert not list((queue / "msg").iterdir())


def test_which_path_the_log_shows(lab, build):
    """One mailbox: delivered without the queue; two (all@): queued first."""
    def session(rcpt):
        script = (f"EHLO me\r\nMAIL FROM:<s@example.org>\r\nRCPT TO:<{rcpt}>\r\nDATA\r\n"
                  "Subject: path\r\n\r\npath\r\n.\r\nQUIT\r\n").encode()
        r = subprocess.run([build / EXE, "-c", lab.config, "--mode", "mx"], input=script,
                           capture_output=True, timeout=30)
        assert b"250 2.0.0 Ok: queued as " in r.stdout, r.stdout
        return r.stderr.decode()
    log = session("alice@example.com")
    assert "event=delivered" in log and "queue=no" in log and "event=queued" not in log, log
    log = session("all@example.com")
    assert "event=queued" in log and "queue=no" not in log, log


def test_queue_write_failure_is_temporary(lab, build, activate, tmp_path):
    conf = tmp_path / "q.conf"
    blocker = tmp_path / "notadir"
    blocker.write_text("x")
    conf.write_text(re.sub(r"(?m)^queue = .*$", f"queue = {blocker}/queue", lab.config.read_text()))
    port = start(activate, build, conf, "--mode", "mx")
    before = count(lab, "alice@example.com")
    c = Raw(port)
    c.cmd("EHLO probe.example")
    c.cmd("MAIL FROM:<a@example.org>")
    c.cmd("RCPT TO:<alice@example.com>")
    assert c.cmd("DATA").startswith("451 4.3.0")
    c.close()
    assert count(lab, "alice@example.com") == before


# --- STARTTLS ---

def test_starttls_swaks(lab, mx):
    before = count(lab, "alice@example.com")
    r = swaks(mx, "--tls", "--to", "alice@example.com", "--from", "s@example.org")
    assert r.returncode == 0, r.stdout
    data = newest(lab, "alice@example.com")
    assert count(lab, "alice@example.com") == before + 1
    assert re.search(rb"\(using TLSv1\.[23] [^)]*\)\n\tby mail.example.test \(sockmail\) with ESMTPS id ", data), data


def test_starttls_smtplib_and_openssl(lab, mx):
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    with smtplib.SMTP("127.0.0.1", mx, timeout=20) as c:
        c.ehlo("client.example.org")
        assert c.has_extn("starttls")
        assert c.starttls(context=ctx)[0] == 220
        c.ehlo("client.example.org")
        assert not c.has_extn("starttls")
        assert c.sendmail("s@example.org", ["bob@example.com"], b"Subject: tls\r\n\r\nx\r\n") == {}
    r = subprocess.run(["openssl", "s_client", "-connect", f"127.0.0.1:{mx}", "-starttls", "smtp",
                        "-quiet", "-ign_eof"], input=b"EHLO x\r\nQUIT\r\n",
                       capture_output=True, timeout=30)
    assert b"250-PIPELINING" in r.stdout and b"221 2.0.0" in r.stdout
    assert b"STARTTLS" not in r.stdout  # not offered again inside TLS


def test_starttls_injection_discarded(lab, mx):
    c = Raw(mx)
    c.cmd("EHLO probe.example")
    # STARTTLS and a command in the same packet: the command must be lost.
    c.send(b"STARTTLS\r\nMAIL FROM:<injected@example.org>\r\n")
    assert c.reply().startswith("220 2.0.0")
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    t = ctx.wrap_socket(c.s, server_hostname="mail.example.test")
    t.sendall(b"EHLO probe.example\r\n")
    buf = b""
    while not re.search(rb"(?m)^250 ", buf):
        buf += t.recv(4096)
    assert buf.startswith(b"250-mail.example.test")
    # Had the injected MAIL been taken, this would be a nested MAIL (503).
    t.sendall(b"MAIL FROM:<a@example.org>\r\n")
    buf = t.recv(4096)
    assert buf.startswith(b"250 2.1.0"), buf
    t.close()


def test_starttls_twice_and_no_cert(lab, build, activate, tmp_path):
    conf = tmp_path / "nocert.conf"
    conf.write_text(re.sub(r"(?m)^(cert|key) = .*$", "", lab.config.read_text()))
    port = start(activate, build, conf, "--mode", "mx")
    c = Raw(port)
    c.send("EHLO probe.example\r\n")
    lines = []
    while True:
        lines.append(c.line())
        if lines[-1].startswith("250 "):
            break
    assert "250-STARTTLS" not in lines
    assert c.cmd("STARTTLS").startswith("454 4.7.0")
    c.close()


from test_lmtp import mounts  # noqa: E402,F401  (the mount fixture, needs root)


def test_disk_full_is_452(lab, build, activate, tmp_path, mounts):
    """The queue on a full file system: 452 4.3.1 at the end of DATA, and
    nothing half-written is left behind; a small message still fits."""
    small = tmp_path / "full"
    small.mkdir()
    mounts("-t", "tmpfs", "-o", "size=64k", "tmpfs", small)
    conf = tmp_path / "full.conf"
    conf.write_text(re.sub(r"(?m)^queue = .*$", f"queue = {small}/queue", lab.config.read_text()))
    port = start(activate, build, conf, "--mode", "mx")
    before = count(lab, "alice@example.com")
    c = Raw(port)
    c.cmd("EHLO probe.example")
    c.cmd("MAIL FROM:<a@example.org>")
    c.cmd("RCPT TO:<alice@example.com>")
    c.cmd("DATA")
    c.send(b"Subject: big\r\n\r\n" + (b"z" * 1000 + b"\r\n") * 200 + b".\r\n")
    assert c.reply().startswith("452 4.3.1")
    assert not list((small / "queue/msg").iterdir())
    c.cmd("MAIL FROM:<a@example.org>")
    c.cmd("RCPT TO:<alice@example.com>")
    c.cmd("DATA")
    c.send(b"Subject: small\r\n\r\nsmall\r\n.\r\n")
    assert c.reply().startswith("250 2.0.0")
    assert c.cmd("QUIT").startswith("221")
    c.close()
    assert count(lab, "alice@example.com") == before + 1


def test_starttls_with_unreadable_cert_is_454(lab, build, activate, tmp_path):
    """Credentials are loaded only when STARTTLS is asked for; when they
    cannot be, the client hears 454 and can go on in plaintext."""
    conf = tmp_path / "badcert.conf"
    conf.write_text(re.sub(r"(?m)^cert = .*$", f"cert = {tmp_path}/missing.pem", lab.config.read_text()))
    port = start(activate, build, conf, "--mode", "mx")
    c = Raw(port)
    c.cmd("EHLO probe.example")
    assert c.cmd("STARTTLS").startswith("454 4.7.0")
    assert c.cmd("MAIL FROM:<a@example.org>").startswith("250")
    c.close()


def test_timeouts_per_state(lab, build, activate, tmp_path):
    conf = tmp_path / "t.conf"
    conf.write_text(lab.config.read_text() + "[smtp]\ntimeout_command = 1\ntimeout_data = 2\n")
    port = start(activate, build, conf, "--mode", "mx")
    c = Raw(port)
    t0 = time.monotonic()
    assert c.reply().startswith("421 4.4.2")  # idle after the greeting
    assert 0.8 < time.monotonic() - t0 < 5
    c.close()
    # In DATA the data timeout applies, and nothing is stored.
    before = count(lab, "alice@example.com")
    c = Raw(port)
    c.cmd("EHLO probe.example")
    c.cmd("MAIL FROM:<a@example.org>")
    c.cmd("RCPT TO:<alice@example.com>")
    assert c.cmd("DATA").startswith("354")
    c.send(b"Subject: slow\r\n\r\npartial")
    t0 = time.monotonic()
    time.sleep(1.3)  # longer than timeout_command, shorter than timeout_data
    c.send(b" more\r\n")
    assert c.reply().startswith("421 4.4.2")
    assert time.monotonic() - t0 > 2.5
    c.close()
    assert count(lab, "alice@example.com") == before
    assert not [p for p in (lab.dir / "queue/msg").iterdir()]


@pytest.mark.parametrize("line", [
    b"RCPT TO:<al\x00ice@example.com>",
    b"MAIL FROM:<a@example.org>\x00 SIZE=10",
    b"RCPT TO:<alice@example.com\x00>",
])
def test_nul_in_commands_refused(lab, mx, line):
    c = Raw(mx)
    c.cmd("EHLO probe.example")
    if line.startswith(b"RCPT"):
        assert c.cmd("MAIL FROM:<a@example.org>").startswith("250")
    c.send(line + b"\r\n")
    assert c.reply()[:1] == "5"
    assert c.cmd("NOOP").startswith("250")
    c.close()


def test_bare_postmaster(lab, build, activate, tmp_path):
    """RCPT TO:<Postmaster> goes to postmaster@ the host's local domain."""
    conf = tmp_path / "pm.conf"
    conf.write_text(re.sub(r"(?m)^hostname = .*$", "hostname = mx.example.com", lab.config.read_text()))
    port = start(activate, build, conf, "--mode", "mx")
    before = count(lab, "alice@example.com")
    c = Raw(port)
    c.cmd("EHLO probe.example")
    c.cmd("MAIL FROM:<a@example.org>")
    assert c.cmd("RCPT TO:<Postmaster>").startswith("250")
    c.cmd("DATA")
    c.send(b"Subject: to postmaster\r\n\r\nhi\r\n.\r\n")
    assert c.reply().startswith("250 2.0.0")
    assert c.cmd("QUIT").startswith("221")
    c.close()
    assert count(lab, "alice@example.com") == before + 1  # postmaster@example.com -> alice
    # The lab's own host name (mail.example.test) has no local domain.
    c = Raw(start(activate, build, lab.config, "--mode", "mx"))
    c.cmd("EHLO probe.example")
    c.cmd("MAIL FROM:<a@example.org>")
    assert c.cmd("RCPT TO:<postmaster>").startswith("550 5.1.1")
    c.close()
