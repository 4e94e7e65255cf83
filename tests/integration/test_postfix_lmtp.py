"""A real Postfix in front of lmtp-handler, as the tutorial puts Postfix in
front of Dovecot: the tutorial's mysql: maps decide what Postfix accepts,
virtual_transport = lmtp:unix:SOCKET hands mail to lmtp-handler (under
systemd-socket-activate --accept --inetd), which writes the Maildir.
Mail is sent with swaks over SMTP to Postfix on a loopback port."""
import os
import shutil
import subprocess
import tempfile
import time
import uuid

import pytest

from conftest import Activated
from postfix_lab import PostfixLab

SWAKS = "/usr/bin/swaks"


@pytest.fixture(scope="module")
def mx(lab, build):
    """Postfix on 127.0.0.1:PORT -> lmtp-handler on a unix socket, shared by
    the tests of this module (Postfix takes seconds to start and stop)."""
    exe = build / "handlers/lmtp-handler/lmtp-handler"
    if not os.access(exe, os.X_OK):
        pytest.fail(f"lmtp-handler not built: {exe} is missing "
                    f"(build it, or set SOCKMAIL_BUILD to a build directory that has it)")
    # Not under pytest's tmp_path: that tree is 0700 and Postfix's lmtp
    # client runs as the postfix user (see postfix_lab.ensure_reachable).
    root = tempfile.mkdtemp(prefix="sm-pf-")
    os.chmod(root, 0o755)
    sock = os.path.join(root, "lmtp.sock")
    handler = Activated([exe, "-c", lab.config], unix=sock)
    pf = PostfixLab(os.path.join(root, "postfix"), lab, lmtp_socket=sock)
    try:
        pf.start()
        yield pf
    finally:
        pf.stop()
        handler.stop()
        shutil.rmtree(root, ignore_errors=True)


def swaks(pf, to, tag):
    return subprocess.run(
        [SWAKS, "--server", f"127.0.0.1:{pf.port}", "--helo", "client.example.org",
         "--from", "sender@example.org", "--to", to,
         "--header", f"Subject: postfix-lmtp {tag}",
         "--body", f"body of {tag}\n.leading dot line\n"],
        capture_output=True, text=True, timeout=60)


def tagged(lab, addr, tag):
    """The messages in ADDR's new/ that carry TAG (the lab is shared by
    other tests, so count only ours)."""
    return [p for p in lab.new_messages(addr) if tag.encode() in p.read_bytes()]


def wait_tagged(lab, pf, addrs, tag, timeout=20.0):
    """Polls until every address has at least one tagged message (bounded)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if all(tagged(lab, a, tag) for a in addrs):
            return
        time.sleep(0.1)
    pytest.fail(f"no delivery of {tag} to {addrs} within {timeout}s\n"
                f"queue:\n{pf.queue()}\nmaillog:\n{pf.maillog()}")


def new_tag():
    return "t" + uuid.uuid4().hex[:12]


def check_message(path, rcpt, tag):
    data = path.read_bytes()
    head = data.split(b"\n\n", 1)[0]
    assert b"Return-Path: <sender@example.org>" in head
    assert f"Delivered-To: {rcpt}".encode() in head
    assert f"Subject: postfix-lmtp {tag}".encode() in head
    # Postfix dot-stuffs, lmtp-handler unstuffs: the line arrives intact.
    assert f"body of {tag}\n.leading dot line\n".encode() in data


def test_to_user(lab, mx):
    tag = new_tag()
    r = swaks(mx, "alice@example.com", tag)
    assert r.returncode == 0, r.stdout + r.stderr
    wait_tagged(lab, mx, ["alice@example.com"], tag)
    mx.wait_queue_empty()
    got = tagged(lab, "alice@example.com", tag)
    assert len(got) == 1, got
    check_message(got[0], "alice@example.com", tag)
    assert "status=sent" in mx.maillog()


def test_alias_to_two(lab, mx):
    tag = new_tag()
    r = swaks(mx, "all@example.com", tag)
    assert r.returncode == 0, r.stdout + r.stderr
    wait_tagged(lab, mx, ["alice@example.com", "bob@example.com"], tag)
    mx.wait_queue_empty()
    for rcpt in ("alice@example.com", "bob@example.com"):
        got = tagged(lab, rcpt, tag)
        assert len(got) == 1, (rcpt, got)
        check_message(got[0], rcpt, tag)
    assert not tagged(lab, "carol@example.net", tag)


def test_alias_chain(lab, mx):
    # team@example.net -> all@example.com -> alice, bob (Postfix expands).
    tag = new_tag()
    r = swaks(mx, "team@example.net", tag)
    assert r.returncode == 0, r.stdout + r.stderr
    wait_tagged(lab, mx, ["alice@example.com", "bob@example.com"], tag)
    mx.wait_queue_empty()
    for rcpt in ("alice@example.com", "bob@example.com"):
        assert len(tagged(lab, rcpt, tag)) == 1, rcpt
    assert "orig_to=<team@example.net>" in mx.maillog()


def all_new_files(lab):
    return {p for p in lab.mail.glob("*/*/new/*")} if lab.mail.exists() else set()


def test_unknown_user_rejected_at_rcpt(lab, mx):
    tag = new_tag()
    before = all_new_files(lab)
    r = swaks(mx, "nobody@example.com", tag)
    # swaks exits 24 when the server refuses RCPT TO.
    assert r.returncode == 24, r.stdout + r.stderr
    assert "<** 550 5.1.1 <nobody@example.com>" in r.stdout, r.stdout
    assert "-> DATA" not in r.stdout
    # Give a wrongly accepted message time to show up, then check nothing did.
    time.sleep(1.0)
    assert "Mail queue is empty" in mx.queue()
    assert not any(tag.encode() in p.read_bytes() for p in all_new_files(lab) - before)
    assert "NOQUEUE: reject: RCPT" in mx.maillog()
    assert not (lab.mail / "example.com" / "nobody").exists()


def test_relay_denied(lab, mx):
    # Loopback is not in mynetworks: an outside domain must not be relayed.
    r = swaks(mx, "someone@example.org", new_tag())
    assert r.returncode == 24, r.stdout
    assert "Relay access denied" in r.stdout
