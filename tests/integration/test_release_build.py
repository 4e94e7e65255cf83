"""The release build as it is installed: lmtp-handler and auth-checker are
static PIEs without OpenSSL (meson.build, common/mariadb-notls.c say why),
and smtp-handler and pop3-handler load GnuTLS only when TLS starts
(common/gnutls-dl.c), so the other tests, which run the sanitizer build, do
not cover how they are linked. These run the release programs against the
real lab database, over its unix socket and over TCP (name resolution
inside a static glibc), and a POP3 session over STLS and over implicit TLS.

./check sets $SOCKMAIL_RELEASE_BUILD to its -Werror release build."""
import json
import os
import pathlib
import re
import socket
import subprocess
import threading

import pytest

from conftest import free_port, wait_port
from test_pop3 import MSGS, fill, login, wire

PROGRAMS = ["handlers/lmtp-handler/lmtp-handler", "handlers/auth-checker/auth-checker"]
TLS_HANDLERS = ["handlers/smtp-handler/smtp-handler", "handlers/pop3-handler/pop3-handler"]


@pytest.fixture(scope="module")
def release():
    path = os.environ.get("SOCKMAIL_RELEASE_BUILD")
    if not path:
        pytest.skip("SOCKMAIL_RELEASE_BUILD is not set (./check sets it)")
    return pathlib.Path(path).resolve()


def build_option(build, name):
    """The value of a meson option the build was configured with."""
    out = subprocess.run(["meson", "introspect", "--buildoptions", str(build)],
                         capture_output=True, text=True, check=True).stdout
    return next(o["value"] for o in json.loads(out) if o["name"] == name)


def static_pie(build):
    """True when meson configured the build with static PIEs."""
    return build_option(build, "static_pie") != "disabled"


@pytest.mark.parametrize("program", PROGRAMS)
def test_static_pie_without_openssl(release, program):
    exe = release / program
    headers = subprocess.run(["readelf", "-lhW", exe], capture_output=True, text=True, check=True).stdout
    assert "DYN (Position-Independent Executable file)" in headers  # ASLR kept
    assert ("INTERP" not in headers) == static_pie(release)
    symbols = subprocess.run(["nm", exe], capture_output=True, text=True, check=True).stdout
    assert not re.search(r" T (SSL_CTX_new|OPENSSL_init_ssl|EVP_sha1)$", symbols, re.M)
    assert re.search(r" T mysql_real_connect$", symbols, re.M)


class Forwarder:
    """127.0.0.1:PORT to the lab's MariaDB unix socket, so the database
    seen over TCP is the same one (and its accounts match as localhost)."""

    def __init__(self, target):
        self.target = str(target)
        self.port = free_port()
        self.listener = socket.create_server(("127.0.0.1", self.port))
        self.listener.settimeout(0.2)
        self.stopping = False
        self.thread = threading.Thread(target=self.serve, daemon=True)
        self.thread.start()

    def serve(self):
        while not self.stopping:
            try:
                client, _ = self.listener.accept()
            except OSError:
                continue
            upstream = socket.socket(socket.AF_UNIX)
            upstream.connect(self.target)
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self.pump, args=(a, b), daemon=True).start()

    @staticmethod
    def pump(src, dst):
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def stop(self):
        self.stopping = True
        self.thread.join(timeout=5)
        self.listener.close()


@pytest.fixture(params=["unix", "tcp"])
def config(request, lab, tmp_path):
    text = lab.config.read_text()
    if request.param == "tcp":
        fwd = Forwarder(lab.mysql_socket)
        request.addfinalizer(fwd.stop)
        wait_port(fwd.port)
        text = re.sub(r"(?m)^hosts = .*$", f"hosts = localhost:{fwd.port}", text)
        assert f"localhost:{fwd.port}" in text
    path = tmp_path / "sockmail.conf"
    path.write_text(text + "[auth]\nfailure_delay = 0\n")
    return path


def test_lmtp_delivery(release, lab, config):
    before = len(lab.new_messages("alice@example.com"))
    script = (b"LHLO me\r\nMAIL FROM:<x@example.org>\r\nRCPT TO:<all@example.com>\r\n"
              b"RCPT TO:<nobody@example.com>\r\nDATA\r\nSubject: release\r\n\r\nrelease build\r\n.\r\nQUIT\r\n")
    r = subprocess.run([release / PROGRAMS[0], "-c", config], input=script,
                       capture_output=True, timeout=30)
    replies = [l for l in r.stdout.split(b"\r\n") if l[3:4] == b" "]
    assert [l[:3] for l in replies] == [b"220", b"250", b"250", b"250", b"550", b"354", b"250", b"221"], r.stdout
    assert len(lab.new_messages("alice@example.com")) == before + 1
    assert lab.new_messages("alice@example.com")[-1].read_bytes().endswith(b"release build\n")


def test_auth_by_hand(release, config):
    def check(user, password):
        return subprocess.run([release / PROGRAMS[1], "-c", config, "--test", user],
                              input=password + "\n", capture_output=True, text=True, timeout=30)
    r = check("alice@example.com", "alice-secret")
    assert r.returncode == 0 and "matches" in r.stdout, r.stdout + r.stderr
    r = check("alice@example.com", "wrong")
    assert r.returncode == 1 and "wrong password" in r.stdout
    r = check("nobody@example.com", "x")
    assert r.returncode == 1 and "no such user" in r.stdout


@pytest.mark.parametrize("program", TLS_HANDLERS)
def test_gnutls_not_needed(release, program):
    """No libgnutls in the ELF NEEDED entries: the loader does not map it
    (and its eight dependencies) for sessions that never start TLS."""
    dynamic = subprocess.run(["readelf", "-d", release / program], capture_output=True, text=True,
                             check=True).stdout
    needed = re.findall(r"\(NEEDED\)\s+Shared library: \[(.*)\]", dynamic)
    assert "libc.so.6" in needed, dynamic
    if build_option(release, "gnutls_link") == "shared":
        assert "libgnutls.so.30" in needed, dynamic
    else:
        assert not [n for n in needed if "gnutls" in n], needed


def test_pop3_over_tls(release, lab, activate, tmp_path):
    """The release pop3-handler (and auth-checker) with the lab's
    certificate: STLS on the plain port, implicit TLS on the other."""
    sock, mail = tmp_path / "auth.sock", tmp_path / "mail"
    conf = tmp_path / "pop.conf"
    text = re.sub(r"(?m)^mail_location = .*$", f"mail_location = {mail}/%d/%n", lab.config.read_text())
    conf.write_text(text + f"[auth]\nsocket = {sock}\nfailure_delay = 0\n")
    activate([release / PROGRAMS[1], "-c", conf], unix=sock)
    plain, implicit = free_port(), free_port()
    activate([release / TLS_HANDLERS[1], "-c", conf], port=plain)
    activate([release / TLS_HANDLERS[1], "-c", conf, "--tls"], port=implicit)
    fill(mail / "example.com" / "alice")
    for port, tls in ((plain, "stls"), (implicit, "ssl")):
        p = login(port, tls)
        assert p.stat()[0] == len(MSGS)
        assert b"\r\n".join(p.retr(2)[1]) + b"\r\n" == wire(MSGS[1])
        assert p.quit().startswith(b"+OK")


def test_account_with_plugin_auth_is_refused_clearly(release, lab, tmp_path):
    """An account that needs a shared auth plugin (ed25519) is refused with
    a hint, instead of dlopen'ing the plugin and a second libc into the
    static program (common/mariadb-static.c)."""
    installed = lab.sql("SELECT COUNT(*) FROM information_schema.plugins "
                        "WHERE plugin_name = 'ed25519'").strip()
    if installed == "0":
        lab.sql("INSTALL SONAME 'auth_ed25519'")
    lab.sql("CREATE USER IF NOT EXISTS 'sm_ed25519'@'localhost' IDENTIFIED VIA ed25519 "
            "USING PASSWORD('ed-secret')")
    lab.sql("GRANT SELECT ON mailserver.* TO 'sm_ed25519'@'localhost'")
    text = lab.config.read_text()
    text = re.sub(r"(?m)^lookup_user = .*$", "lookup_user = sm_ed25519", text)
    text = re.sub(r"(?m)^lookup_password_file = .*$", "lookup_password = ed-secret", text)
    conf = tmp_path / "ed.conf"
    conf.write_text(text)
    r = subprocess.run([release / PROGRAMS[0], "-c", conf], capture_output=True, timeout=30,
                       input=b"LHLO me\r\nMAIL FROM:<>\r\nRCPT TO:<alice@example.com>\r\nQUIT\r\n")
    assert r.returncode == 0
    assert b"451 4.3.0 <alice@example.com>" in r.stdout, r.stdout
    assert b"mysql_native_password" in r.stderr and b"(5010)" in r.stderr, r.stderr
