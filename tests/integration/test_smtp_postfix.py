"""A real Postfix (Debian's package, loopback) as the sending MTA: it takes
mail from swaks and relays it to smtp-handler in mx mode the way an
internet MTA would, with STARTTLS required (smtp_tls_security_level =
encrypt) and pipelining."""
import subprocess

import pytest

from conftest import free_port
from postfix_lab import PostfixLab
from test_smtp import EXE, count, newest


class TLSPostfixLab(PostfixLab):
    """PostfixLab plus the tlsmgr service, without which Postfix's smtp
    client has "no entropy for TLS key generation" and disables TLS."""

    def write_config(self):
        super().write_config()
        with open(self.config_dir / "master.cf", "a") as f:
            f.write("tlsmgr    unix  -       -       n       1000?   1       tlsmgr\n")


@pytest.fixture(scope="module")
def mx_and_postfix(lab, build, tmp_path_factory):
    from conftest import Activated
    root = tmp_path_factory.mktemp("pf-smtp")
    port = free_port()
    mx = Activated([build / EXE, "-c", lab.config, "--mode", "mx"], port=port)
    # Postfix is not the destination of example.com/.net here but a relay
    # for them (like an internet MTA whose MX lookup found us).
    extra = {
        "virtual_mailbox_domains": "",
        "virtual_mailbox_maps": "",
        "virtual_alias_maps": "",
        "relay_domains": "example.com, example.net",
        "relay_recipient_maps": "",
        "relay_transport": f"relay:[127.0.0.1]:{port}",
        "default_transport": f"smtp:[127.0.0.1]:{port}",
        "smtp_tls_security_level": "encrypt",
        "smtp_tls_loglevel": "1",
        "relay_tls_security_level": "encrypt",
    }
    pf = TLSPostfixLab(root, lab, lmtp_socket=root / "unused-lmtp.sock", extra_main=extra)
    try:
        pf.start()
        yield pf
    finally:
        pf.stop()
        mx.stop()


def test_postfix_relays_to_mx_over_starttls(lab, mx_and_postfix):
    pf = mx_and_postfix
    a, b = count(lab, "alice@example.com"), count(lab, "bob@example.com")
    r = subprocess.run(["swaks", "--server", "127.0.0.1", "--port", str(pf.port),
                        "--helo", "client.example.org", "--from", "sender@example.org",
                        "--to", "alice@example.com,all@example.com",
                        "--header", "Subject: via postfix", "--body", "hello via postfix"],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stdout
    pf.wait_queue_empty(timeout=30)
    log = pf.maillog()
    assert "TLS connection established to 127.0.0.1" in log, log
    assert "status=sent" in log and "queued as" in log, log
    # alice once (RCPT alice@ and all@ in one transaction), bob once.
    assert count(lab, "alice@example.com") == a + 1, log
    assert count(lab, "bob@example.com") == b + 1, log
    data = newest(lab, "alice@example.com")
    assert b"Received: from mx.lab.test (127.0.0.1 [127.0.0.1])" in data
    assert b"(sockmail) with ESMTPS id " in data
    assert b"hello via postfix" in data
    # Postfix's own Received: is below ours, as in any relay chain.
    assert data.index(b"(sockmail)") < data.index(b"by mx.lab.test (Postfix)")


def test_postfix_sees_unknown_user_as_permanent(lab, mx_and_postfix):
    pf = mx_and_postfix
    r = subprocess.run(["swaks", "--server", "127.0.0.1", "--port", str(pf.port),
                        "--helo", "client.example.org", "--from", "<>",
                        "--to", "nobody@example.com"],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stdout  # Postfix accepts, then tries us
    pf.wait_queue_empty(timeout=30)
    log = pf.maillog()
    assert "status=bounced" in log and "550 5.1.1 <nobody@example.com>" in log, log
