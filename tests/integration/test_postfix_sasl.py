"""Real Postfix (Debian's, private instance on loopback) authenticating
SMTP clients through auth-checker with the tutorial's settings:
smtpd_sasl_type = dovecot, smtpd_sasl_path = auth-checker's socket,
smtpd_sasl_auth_enable = yes, AUTH only after STARTTLS (the lab's
certificate). Driven with swaks."""
import shutil
import subprocess

import pytest

from postfix_lab import PostfixLab, ensure_reachable


class SaslPostfixLab(PostfixLab):
    """postfix_lab's instance plus the tlsmgr service, without which smtpd
    disables STARTTLS ("no entropy for TLS key generation"). Added here so
    postfix_lab.py (another test's fixture) stays as it is."""

    def write_config(self):
        super().write_config()
        with open(self.config_dir / "master.cf", "a") as f:
            f.write("tlsmgr    unix  -       -       n       1000?   1       tlsmgr\n")

pytestmark = pytest.mark.skipif(not shutil.which("swaks"), reason="swaks not installed")


@pytest.fixture
def postfix(lab, build, activate, tmp_path):
    sock = tmp_path / "auth.sock"
    conf = tmp_path / "sockmail.conf"
    conf.write_text(lab.config.read_text() + f"[auth]\nsocket = {sock}\nfailure_delay = 0\n")
    activate([build / "handlers/auth-checker/auth-checker", "-c", conf], unix=sock)
    ensure_reachable(sock)  # smtpd runs as postfix: o+x on the path, socket 0666
    pf = SaslPostfixLab(tmp_path / "postfix", lab, lmtp_socket=tmp_path / "lmtp.sock", extra_main={
        "smtpd_sasl_type": "dovecot",
        "smtpd_sasl_path": str(sock),
        "smtpd_sasl_auth_enable": "yes",
        "smtpd_tls_security_level": "may",
        "smtpd_tls_auth_only": "yes",
        "smtpd_tls_cert_file": str(lab.dir / "tls/cert.pem"),
        "smtpd_tls_key_file": str(lab.dir / "tls/key.pem"),
        "smtpd_relay_restrictions": "permit_sasl_authenticated, reject_unauth_destination",
    })
    pf.start()
    try:
        yield pf
    finally:
        pf.stop()


def swaks(pf, mech, user, password, tls=True):
    cmd = ["swaks", "--server", "127.0.0.1", "--port", str(pf.port), "--ehlo", "client.test",
           "--auth", mech, "--auth-user", user, "--auth-password", password,
           "--quit-after", "AUTH", "--timeout", "20"]
    if tls:
        cmd.append("--tls")
    return subprocess.run(cmd, capture_output=True, text=True, timeout=60)


def test_plain_and_login_succeed(postfix):
    for mech in ("PLAIN", "LOGIN"):
        r = swaks(postfix, mech, "alice@example.com", "alice-secret")
        assert r.returncode == 0 and "<~  235 " in r.stdout, (mech, r.stdout, postfix.maillog())
    assert postfix.maillog().count(" auth=1 ") >= 2


def test_wrong_password_and_unknown_user_fail(postfix):
    for mech in ("PLAIN", "LOGIN"):
        r = swaks(postfix, mech, "alice@example.com", "wrong")
        assert r.returncode != 0 and "<~* 535 " in r.stdout, (mech, r.stdout)
    r = swaks(postfix, "PLAIN", "nobody@example.com", "x")
    assert "<~* 535 " in r.stdout, r.stdout


def test_no_auth_without_tls(postfix):
    r = swaks(postfix, "PLAIN", "alice@example.com", "alice-secret", tls=False)
    assert r.returncode != 0 and "235 " not in r.stdout


def test_database_down_is_454(lab, postfix):
    lab.db_stop()
    try:
        r = swaks(postfix, "PLAIN", "alice@example.com", "alice-secret")
        assert "<~* 454 4.7.0" in r.stdout, (r.stdout, postfix.maillog())
    finally:
        lab.db_start()
    r = swaks(postfix, "PLAIN", "alice@example.com", "alice-secret")
    assert "<~  235 " in r.stdout
