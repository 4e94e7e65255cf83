"""smtp-handler in submission mode (587 with STARTTLS, 465 with --tls):
AUTH PLAIN/LOGIN relayed to a real auth-checker, the sender check, relay
to remote recipients into the queue, added Date:/Message-ID:, with swaks,
smtplib (starttls and SMTP_SSL), curl smtps:// and raw probes."""
import base64
import re
import smtplib
import ssl
import subprocess

import pytest

from conftest import free_port
from test_smtp import EXE, Raw, count, newest, swaks

ALICE = ("alice@example.com", "alice-secret")


def b64(s):
    return base64.b64encode(s.encode()).decode()


@pytest.fixture
def sub(lab, build, activate, tmp_path):
    """start(*args, **smtp) -> (port, queue dir): auth-checker on a unix
    socket and smtp-handler --mode submission ARGS with its own queue."""
    def start(*args, auth=None, smtp=None):
        sock = tmp_path / "auth.sock"
        queue = tmp_path / "queue"
        conf = tmp_path / "sub.conf"
        auth_settings = {"socket": sock, "failure_delay": 0, **(auth or {})}
        text = re.sub(r"(?m)^queue = .*$", f"queue = {queue}", lab.config.read_text())
        text += "[auth]\n" + "".join(f"{k} = {v}\n" for k, v in auth_settings.items())
        text += "[smtp]\n" + "".join(f"{k} = {v}\n" for k, v in (smtp or {}).items())
        conf.write_text(text)
        if not sock.exists():
            activate([build / "handlers/auth-checker/auth-checker", "-c", conf], unix=sock)
        port = free_port()
        activate([build / EXE, "-c", conf, "--mode", "submission", *args], port=port)
        return port, queue
    return start


def ctx():
    c = ssl.create_default_context()
    c.check_hostname = False
    c.verify_mode = ssl.CERT_NONE
    return c


def queued(queue):
    return sorted((queue / "msg").glob("*.env")) if (queue / "msg").exists() else []


@pytest.mark.parametrize("mech", ["PLAIN", "LOGIN"])
def test_swaks_submission_local_and_remote(lab, sub, mech):
    port, queue = sub()
    before = count(lab, "bob@example.com")
    r = swaks(port, "--tls", "--auth", mech, "--auth-user", ALICE[0], "--auth-password", ALICE[1],
              "--from", "alice@example.com", "--to", "bob@example.com,friend@remote.example",
              "--header", "Subject: submitted", "--add-header", "X-Test: yes",
              "--body", "hi bob")
    assert r.returncode == 0, r.stdout
    assert "235 2.7.0" in r.stdout
    assert count(lab, "bob@example.com") == before + 1
    data = newest(lab, "bob@example.com")
    assert b" with ESMTPSA id " in data and b"(Authenticated sender: alice@example.com)" in data
    # The remote recipient stays queued, durably, for outbound delivery.
    envs = queued(queue)
    assert len(envs) == 1
    env = envs[0].read_text()
    assert re.search(r"^r P R dest=friend@remote.example rcpt=friend@remote.example ", env, re.M)
    assert re.search(r"^r D L dest=bob@example.com ", env, re.M)
    assert "auth=alice@example.com" in env


def test_date_and_message_id_added(lab, sub):
    port, _ = sub()
    before = count(lab, "bob@example.com")
    with smtplib.SMTP("127.0.0.1", port, timeout=20) as c:
        c.starttls(context=ctx())
        c.login(*ALICE)
        c.sendmail("alice@example.com", ["bob@example.com"], b"Subject: bare\r\n\r\nno date\r\n")
        c.sendmail("alice@example.com", ["bob@example.com"],
                   b"Subject: full\r\nDate: Mon, 1 Jan 2024 00:00:00 +0000\r\n"
                   b"Message-ID: <x@y>\r\n\r\nhas both\r\n")
    msgs = lab.new_messages("bob@example.com")[before:]
    assert len(msgs) == 2
    bare = msgs[0].read_bytes()
    head = bare.split(b"\n\n", 1)[0]
    assert re.search(rb"(?m)^Date: \w{3}, \d\d \w{3} \d{4} ", head)
    assert re.search(rb"(?m)^Message-ID: <[0-9a-f.]+@mail.example.test>$", head)
    full = msgs[1].read_bytes()
    assert full.count(b"Date:") == 1 and full.count(b"Message-ID:") == 1


def test_auth_before_tls_refused(sub):
    port, _ = sub()
    c = Raw(port)
    c.send("EHLO probe.example\r\n")
    lines = [c.line()]
    while not lines[-1].startswith("250 "):
        lines.append(c.line())
    assert "250-STARTTLS" in lines and not [l for l in lines if "AUTH" in l]
    assert c.cmd("AUTH PLAIN " + b64("\0alice@example.com\0alice-secret")).startswith("538 5.7.11")
    assert c.cmd("MAIL FROM:<alice@example.com>").startswith("530 5.7.0")
    c.close()


def test_mail_requires_auth(sub):
    port, _ = sub()
    with smtplib.SMTP("127.0.0.1", port, timeout=20) as c:
        c.starttls(context=ctx())
        c.ehlo("x")
        assert c.has_extn("auth") and "PLAIN" in c.esmtp_features["auth"]
        code, text = c.mail("alice@example.com")
        assert code == 530 and text.startswith(b"5.7.0 Authentication required")


def test_forged_sender_refused_alias_sender_allowed(lab, sub):
    port, _ = sub()
    with smtplib.SMTP("127.0.0.1", port, timeout=20) as c:
        c.starttls(context=ctx())
        c.login(*ALICE)
        code, text = c.mail("bob@example.com")
        assert code == 553 and text.startswith(b"5.7.1")
        code, _ = c.mail("someone@remote.example")
        assert code == 553
        # postmaster@example.com is an alias of alice: hers to use.
        assert c.mail("postmaster@example.com")[0] == 250
        c.rset()
        assert c.mail("ALICE@example.com")[0] == 250
        assert c.rcpt("anyone@remote.example")[0] == 250  # relay for a logged-in user
        c.rset()
        assert c.mail("")[0] == 250  # bounces may be sent


def test_wrong_password_and_max_attempts(sub):
    port, _ = sub(auth={"max_attempts": 2})
    c = Raw(port)
    c.cmd("EHLO probe.example")
    c.send("STARTTLS\r\n")
    assert c.reply().startswith("220")
    t = ctx().wrap_socket(c.s, server_hostname="x")
    c.s, c.buf = t, b""
    c.send("EHLO probe.example\r\n")
    while not c.line().startswith("250 "):
        pass
    assert c.cmd("AUTH PLAIN " + b64("\0alice@example.com\0wrong")).startswith("535 5.7.8")
    # LOGIN step by step, cancelled.
    assert c.cmd("AUTH LOGIN").startswith("334 ")
    assert c.cmd("*").startswith("501 5.0.0")
    assert c.cmd("AUTH CRAM-MD5").startswith("504 5.5.4")
    assert c.cmd("AUTH LOGIN " + b64("alice@example.com")).startswith("334 ")
    assert c.cmd(b64("nope")).startswith("535 5.7.8")
    assert c.line().startswith("421 4.7.0")
    c.close()


def test_implicit_tls_465_smtplib_ssl_and_curl(lab, sub, tmp_path):
    port, _ = sub("--tls")
    before = count(lab, "carol@example.net")
    with smtplib.SMTP_SSL("127.0.0.1", port, timeout=20, context=ctx()) as c:
        c.ehlo("client.example.org")
        assert not c.has_extn("starttls")
        c.login(*ALICE)
        assert c.sendmail("alice@example.com", ["carol@example.net"],
                          b"Subject: 465\r\n\r\nhello 465\r\n") == {}
    msg = tmp_path / "m.txt"
    msg.write_bytes(b"Subject: curl smtps\r\n\r\nhello smtps\r\n")
    r = subprocess.run(["curl", "-sS", "-k", f"smtps://127.0.0.1:{port}", "--user",
                        f"{ALICE[0]}:{ALICE[1]}", "--mail-from", "alice@example.com",
                        "--mail-rcpt", "carol@example.net", "-T", str(msg)],
                       capture_output=True, text=True, timeout=30)
    assert r.returncode == 0, r.stderr
    assert count(lab, "carol@example.net") == before + 2
    assert b"hello smtps\n" in newest(lab, "carol@example.net")


def test_auth_checker_down_is_temporary(lab, build, activate, tmp_path):
    conf = tmp_path / "down.conf"
    conf.write_text(lab.config.read_text() + f"[auth]\nsocket = {tmp_path}/missing.sock\n")
    port = free_port()
    activate([build / EXE, "-c", conf, "--mode", "submission"], port=port)
    with smtplib.SMTP("127.0.0.1", port, timeout=20) as c:
        c.starttls(context=ctx())
        c.ehlo("x")
        code, _ = c.docmd("AUTH", "PLAIN " + b64("\0alice@example.com\0alice-secret"))
        assert code == 454


def test_mx_auth_only_when_configured(lab, build, activate, tmp_path):
    port = free_port()
    activate([build / EXE, "-c", lab.config, "--mode", "mx"], port=port)
    with smtplib.SMTP("127.0.0.1", port, timeout=20) as c:
        c.starttls(context=ctx())
        c.ehlo("x")
        assert not c.has_extn("auth")
        assert c.docmd("AUTH", "PLAIN " + b64("\0alice@example.com\0alice-secret"))[0] == 503
