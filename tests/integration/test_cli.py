"""The `sockmail` admin CLI against a real lab: hashes checked by Dovecot's
doveadm and OpenSSL, domain/user/alias round trips (text and --json), the
validation the handlers apply, lookups, and `sockmail check` with broken
TLS pairs, an over-privileged lookup account and a stopped database.

Writes go to the domain cli.test only, which is removed before and after."""
import json
import os
import pty
import re
import select
import shutil
import subprocess
import time

import pytest

DOMAIN = "cli.test"
SCHEMES = {
    "SHA512-CRYPT": "{SHA512-CRYPT}$6$",
    "SHA256-CRYPT": "{SHA256-CRYPT}$5$",
    "BLF-CRYPT": "{BLF-CRYPT}$2y$",
    "YESCRYPT": "{CRYPT}$y$",
}


@pytest.fixture
def sockmail(build, lab):
    """sockmail(*args, input=None, config=lab.config) -> CompletedProcess (text)."""
    exe = build / "handlers/sockmail/sockmail"

    def run(*args, input=None, config=None, env=None):
        cmd = [str(exe)]
        if config is not False:
            cmd += ["-c", str(config or lab.config)]
        return subprocess.run(cmd + [str(a) for a in args], input=input, capture_output=True,
                              text=True, timeout=60, env=env)
    run.exe = exe
    return run


def drop_domain(lab):
    lab.sql(f"DELETE FROM virtual_domains WHERE name = '{DOMAIN}'")
    shutil.rmtree(lab.mail / DOMAIN, ignore_errors=True)


@pytest.fixture
def clidomain(lab, sockmail):
    """cli.test, created through the CLI, removed (with its rows) afterwards."""
    drop_domain(lab)
    r = sockmail("domain", "add", DOMAIN)
    assert r.returncode == 0, r.stderr
    yield DOMAIN
    drop_domain(lab)


def doveadm_verifies(hash_, password):
    r = subprocess.run(["doveadm", "pw", "-t", hash_, "-p", password], capture_output=True,
                       text=True, timeout=30)
    return r.returncode == 0 and "(verified)" in r.stdout


def stored_hash(lab, email):
    return lab.sql(f"SELECT password FROM virtual_users WHERE email = '{email}'").strip()


# ---- usage ----

def test_help_and_usage_errors(sockmail):
    r = sockmail("--help", config=False)
    assert r.returncode == 0 and r.stdout.startswith("usage: sockmail")
    for cmd in ("pw", "domain", "user", "alias", "lookup", "check", "queue"):
        r = sockmail(cmd, "--help", config=False)
        assert r.returncode == 0 and r.stdout.startswith("usage: sockmail"), cmd
        assert cmd in r.stdout.splitlines()[0]
    r = sockmail("user", "add", "--help", config=False)
    assert r.returncode == 0 and r.stdout.startswith("usage: sockmail")
    assert sockmail(config=False).returncode == 2
    assert sockmail("frobnicate").returncode == 2
    assert sockmail("--bogus", config=False).returncode == 2
    assert sockmail("domain").returncode == 2
    assert sockmail("domain", "explode", "x").returncode == 2
    assert sockmail("domain", "add").returncode == 2
    assert sockmail("user", "add", "a@b.c", "extra").returncode == 2
    assert sockmail("user", "list", "--bogus").returncode == 2
    assert sockmail("lookup").returncode == 2
    r = sockmail("pw", "-s", "MD5", "-p", "x")
    assert r.returncode == 2 and "SHA512-CRYPT" in r.stderr
    r = sockmail("domain", "list", "-c")
    assert r.returncode == 2


def test_bad_config_is_named(sockmail, tmp_path):
    bad = tmp_path / "bad.conf"
    bad.write_text("[general]\nnonsense = 1\n")
    r = sockmail("domain", "list", config=bad)
    assert r.returncode == 2
    assert "bad.conf:2" in r.stderr and "-c FILE" in r.stderr
    r = sockmail("domain", "list", config=tmp_path / "missing.conf")
    assert r.returncode == 2 and "missing.conf" in r.stderr


# ---- pw ----

@pytest.mark.parametrize("scheme", sorted(SCHEMES))
def test_pw_hash_verifies_in_dovecot(sockmail, scheme):
    password = "pä ss:w0rd"
    r = sockmail("pw", "-s", scheme, "-p", password)
    assert r.returncode == 0, r.stderr
    h = r.stdout.strip()
    assert h.startswith(SCHEMES[scheme]), h
    assert doveadm_verifies(h, password)
    assert not doveadm_verifies(h, password + "x")
    # and back through sockmail pw -t
    t = sockmail("pw", "-t", h, "-p", password)
    assert t.returncode == 0 and scheme in t.stdout


def test_pw_verifies_doveadm_and_openssl_hashes(sockmail):
    dh = subprocess.run(["doveadm", "pw", "-s", "SHA512-CRYPT", "-p", "x"], capture_output=True,
                        text=True, check=True, timeout=30).stdout.strip()
    oh = subprocess.run(["openssl", "passwd", "-6", "x"], capture_output=True, text=True,
                        check=True, timeout=30).stdout.strip()
    assert dh.startswith("{SHA512-CRYPT}$6$") and oh.startswith("$6$")
    for h in (dh, oh):
        r = sockmail("pw", "-t", h, "-p", "x")
        assert r.returncode == 0 and "verified" in r.stdout and "SHA512-CRYPT" in r.stdout
        r = sockmail("pw", "-t", h, "-p", "y")
        assert r.returncode == 1 and "mismatch" in r.stdout and "SHA512-CRYPT" in r.stdout
    r = sockmail("pw", "-t", "not-a-hash", "-p", "x")
    assert r.returncode == 1 and "UNKNOWN" in r.stderr


def test_pw_without_any_config(sockmail, tmp_path):
    """pw works with no config file at all (the default path is missing)."""
    env = {k: v for k, v in os.environ.items() if k != "SOCKMAIL_CONFIG"}
    default = subprocess.run([str(sockmail.exe), "--help"], capture_output=True,
                             text=True).stdout.split("else $SOCKMAIL_CONFIG, else ")[1].split(")")[0]
    if os.path.exists(default):
        pytest.skip(f"{default} exists on this machine")
    r = sockmail("pw", "-p", "x", config=False, env=env)
    assert r.returncode == 0 and r.stdout.startswith("{SHA512-CRYPT}$6$")
    # but another command needs one and says how to give it
    r = sockmail("domain", "list", config=False, env=env)
    assert r.returncode == 2 and "-c FILE" in r.stderr


def test_pw_default_scheme_from_config(sockmail, lab, tmp_path):
    conf = tmp_path / "blf.conf"
    conf.write_text(lab.config.read_text() + "\n[auth]\ndefault_scheme = BLF-CRYPT\n")
    r = sockmail("pw", "-p", "x", config=conf)
    assert r.returncode == 0 and r.stdout.startswith("{BLF-CRYPT}$2y$")
    conf.write_text(lab.config.read_text() + "\n[auth]\ndefault_scheme = NOPE\n")
    r = sockmail("pw", "-p", "x", config=conf)
    assert r.returncode == 2 and "default_scheme" in r.stderr


def test_pw_from_stdin(sockmail):
    r = sockmail("pw", input="from stdin\n")
    assert r.returncode == 0
    assert sockmail("pw", "-t", r.stdout.strip(), "-p", "from stdin").returncode == 0
    r = sockmail("pw", input="")
    assert r.returncode == 1 and "-p" in r.stderr
    r = sockmail("pw", input="\n")
    assert r.returncode == 1 and "empty" in r.stderr
    r = sockmail("pw", input="x" * 5000 + "\n")
    assert r.returncode == 1 and "longer" in r.stderr


def run_on_pty(argv, typed, timeout=30):
    """Runs ARGV with a pseudo-terminal as stdin/stdout/stderr, typing each
    line of TYPED after a prompt appears; returns (exit code, all output)."""
    master, slave = pty.openpty()
    p = subprocess.Popen(argv, stdin=slave, stdout=slave, stderr=slave, close_fds=True)
    os.close(slave)
    out = b""
    pending = list(typed)
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([master], [], [], 0.2)
            if ready:
                try:
                    chunk = os.read(master, 4096)
                except OSError:
                    break
                if not chunk:
                    break
                out += chunk
                if pending and out.count(b"password: ") > len(typed) - len(pending):
                    os.write(master, pending.pop(0).encode() + b"\n")
            elif p.poll() is not None:
                break
        return p.wait(timeout=10), out.decode(errors="replace")
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
        os.close(master)


def test_pw_on_a_terminal(sockmail):
    """Twice from the terminal with echo off; a mismatch is refused."""
    code, out = run_on_pty([str(sockmail.exe), "pw"], ["tty-secret", "tty-secret"])
    assert code == 0, out
    assert "Enter new password:" in out and "Retype new password:" in out
    assert "tty-secret" not in out          # echo was off
    h = [l for l in out.splitlines() if l.startswith("{SHA512-CRYPT}")][0].strip()
    assert sockmail("pw", "-t", h, "-p", "tty-secret").returncode == 0
    code, out = run_on_pty([str(sockmail.exe), "pw"], ["one", "two"])
    assert code == 1 and "do not match" in out


# ---- domains, users, aliases ----

def test_domain_round_trip(sockmail, lab):
    drop_domain(lab)
    try:
        r = sockmail("domain", "add", "CLI.Test")
        assert r.returncode == 0 and "cli.test" in r.stdout
        assert lab.sql("SELECT name FROM virtual_domains WHERE name = 'cli.test'").strip() == "cli.test"
        r = sockmail("domain", "add", DOMAIN)
        assert r.returncode == 1 and "exists" in r.stderr
        r = sockmail("domain", "list")
        assert r.returncode == 0
        assert any(l.split("\t")[0] == DOMAIN for l in r.stdout.splitlines())
        r = sockmail("domain", "list", "--json")
        listed = {d["name"]: d for d in json.loads(r.stdout)}
        assert listed[DOMAIN] == {"name": DOMAIN, "users": 0, "aliases": 0}
        assert listed["example.com"]["users"] == 2 and listed["example.com"]["aliases"] == 3
        r = sockmail("domain", "del", DOMAIN)
        assert r.returncode == 0
        assert lab.sql("SELECT COUNT(*) FROM virtual_domains WHERE name = 'cli.test'").strip() == "0"
        r = sockmail("domain", "del", DOMAIN)
        assert r.returncode == 1 and "no such domain" in r.stderr
    finally:
        drop_domain(lab)


@pytest.mark.parametrize("bad", ["", "bad domain", "a@b.c", "-x-.com", "a..b", "x" * 60 + ".com"])
def test_domain_validation(sockmail, bad):
    r = sockmail("domain", "add", "--", bad)
    assert r.returncode == 1, (bad, r.stdout, r.stderr)
    assert "domain" in r.stderr


def test_user_round_trip(sockmail, lab, clidomain):
    r = sockmail("user", "add", "u1@CLI.test", "-p", "first-pw")
    assert r.returncode == 0, r.stderr
    h = stored_hash(lab, "u1@cli.test")
    assert h.startswith("{SHA512-CRYPT}$6$") and doveadm_verifies(h, "first-pw")
    assert "first-pw" not in r.stdout + r.stderr

    r = sockmail("user", "add", "u1@cli.test", "-p", "other")
    assert r.returncode == 1 and "exists" in r.stderr
    assert stored_hash(lab, "u1@cli.test") == h

    r = sockmail("user", "add", "u2@cli.test", "-s", "YESCRYPT", input="piped-pw\n")
    assert r.returncode == 0, r.stderr
    assert stored_hash(lab, "u2@cli.test").startswith("{CRYPT}$y$")
    assert doveadm_verifies(stored_hash(lab, "u2@cli.test"), "piped-pw")

    r = sockmail("user", "list", DOMAIN)
    assert r.returncode == 0
    assert r.stdout.splitlines() == ["u1@cli.test\tSHA512-CRYPT", "u2@cli.test\tYESCRYPT"]
    listed = json.loads(sockmail("user", "list", DOMAIN, "--json").stdout)
    assert listed == [{"email": "u1@cli.test", "domain": DOMAIN, "scheme": "SHA512-CRYPT"},
                      {"email": "u2@cli.test", "domain": DOMAIN, "scheme": "YESCRYPT"}]
    everyone = json.loads(sockmail("user", "list", "--json").stdout)
    assert {"alice@example.com", "u1@cli.test"} <= {u["email"] for u in everyone}
    assert not any("$" in json.dumps(u) for u in everyone)   # no hash is ever shown

    r = sockmail("user", "passwd", "u1@cli.test", "-s", "BLF-CRYPT", input="second-pw\n")
    assert r.returncode == 0, r.stderr
    h2 = stored_hash(lab, "u1@cli.test")
    assert h2.startswith("{BLF-CRYPT}") and doveadm_verifies(h2, "second-pw")
    assert sockmail("user", "passwd", "nobody@cli.test", "-p", "x").returncode == 1

    r = sockmail("user", "del", "u1@cli.test")
    assert r.returncode == 0 and "left on disk" in r.stdout
    assert lab.sql("SELECT COUNT(*) FROM virtual_users WHERE email = 'u1@cli.test'").strip() == "0"
    r = sockmail("user", "del", "u1@cli.test")
    assert r.returncode == 1 and "no such user" in r.stderr


def test_user_validation(sockmail, lab, clidomain):
    r = sockmail("user", "add", "not an address", "-p", "x")
    assert r.returncode == 1 and "not a valid address" in r.stderr
    r = sockmail("user", "add", "a..b@cli.test", "-p", "x")
    assert r.returncode == 1
    r = sockmail("user", "add", "someone@missing-domain.test", "-p", "x")
    assert r.returncode == 1 and "domain add missing-domain.test" in r.stderr
    r = sockmail("user", "add", "x" * 65 + "@cli.test", "-p", "x")
    assert r.returncode == 1 and "local part too long" in r.stderr
    # valid, but longer than the tutorial's varchar(100) column
    r = sockmail("alias", "add", "a@cli.test", "x" * 60 + "@" + "d" * 40 + ".example")
    assert r.returncode == 1 and "longer than 100" in r.stderr
    r = sockmail("user", "add", "u@cli.test", "-p", "")
    assert r.returncode == 1 and "empty" in r.stderr
    r = sockmail("user", "add", "u@cli.test", "-p", "x", "-s", "MD5-CRYPT")
    assert r.returncode == 2
    r = sockmail("user", "list", "missing-domain.test")
    assert r.returncode == 1
    assert lab.sql("SELECT COUNT(*) FROM virtual_users WHERE email LIKE '%cli.test'").strip() == "0"


def test_alias_round_trip(sockmail, lab, clidomain):
    assert sockmail("user", "add", "u@cli.test", "-p", "x").returncode == 0
    r = sockmail("alias", "add", "list@cli.test", "u@cli.test", "alice@example.com",
                 "ext@remote.example")
    assert r.returncode == 0, r.stderr
    r = sockmail("alias", "add", "list@cli.test", "u@cli.test")
    assert r.returncode == 1 and "exists" in r.stderr
    r = sockmail("alias", "add", "@CLI.test", "u@cli.test")
    assert r.returncode == 0, r.stderr
    r = sockmail("alias", "list", DOMAIN)
    assert r.stdout.splitlines() == ["@cli.test -> u@cli.test",
                                     "list@cli.test -> u@cli.test",
                                     "list@cli.test -> alice@example.com",
                                     "list@cli.test -> ext@remote.example"]
    listed = json.loads(sockmail("alias", "list", "--json", DOMAIN).stdout)
    assert {"source": "@cli.test", "destination": "u@cli.test", "domain": DOMAIN} in listed
    assert len(listed) == 4

    # validation
    assert sockmail("alias", "add", "x@missing-domain.test", "u@cli.test").returncode == 1
    r = sockmail("alias", "add", "x@cli.test", "not valid")
    assert r.returncode == 1 and "destination" in r.stderr
    assert sockmail("alias", "add", "bad source@cli.test", "u@cli.test").returncode == 1
    assert sockmail("alias", "add", "@bad domain", "u@cli.test").returncode == 1
    assert sockmail("alias", "add", "only-source@cli.test").returncode == 2

    # a user who becomes an alias source is told what happens
    r = sockmail("alias", "add", "u@cli.test", "alice@example.com")
    assert r.returncode == 0 and "also a user" in r.stdout
    assert sockmail("alias", "del", "u@cli.test").returncode == 0

    r = sockmail("alias", "del", "list@cli.test", "alice@example.com")
    assert r.returncode == 0
    r = sockmail("alias", "del", "list@cli.test", "alice@example.com")
    assert r.returncode == 1 and "no alias" in r.stderr
    r = sockmail("alias", "del", "list@cli.test")
    assert r.returncode == 0 and "2 alias rows" in r.stdout
    assert len(json.loads(sockmail("alias", "list", "--json", DOMAIN).stdout)) == 1


def test_json_escaping(sockmail, lab, clidomain):
    """Values the CLI would not write itself still come out as valid JSON."""
    odd = 'a"b\\c\td\x01e ü'
    lab.sql("INSERT INTO virtual_aliases (domain_id, source, destination) "
            "SELECT id, 'esc@cli.test', CONCAT('a\"b', CHAR(92), 'c', CHAR(9), 'd', CHAR(1), "
            "'e ', _utf8mb4 0xC3BC) FROM virtual_domains WHERE name = 'cli.test'")
    listed = json.loads(sockmail("alias", "list", "--json", DOMAIN).stdout)
    assert listed == [{"source": "esc@cli.test", "destination": odd, "domain": DOMAIN}]


def test_domain_del_refuses_then_cascades(sockmail, lab, clidomain):
    assert sockmail("user", "add", "u@cli.test", "-p", "x").returncode == 0
    assert sockmail("alias", "add", "a@cli.test", "u@cli.test").returncode == 0
    r = sockmail("domain", "del", DOMAIN)
    assert r.returncode == 1
    assert "1 user and 1 alias" in r.stderr and "--force" in r.stderr and "cascade" in r.stderr
    assert lab.sql("SELECT COUNT(*) FROM virtual_users WHERE email = 'u@cli.test'").strip() == "1"
    r = sockmail("domain", "del", "--force", DOMAIN)
    assert r.returncode == 0 and "cascade" in r.stdout
    assert lab.sql("SELECT COUNT(*) FROM virtual_users WHERE email = 'u@cli.test'").strip() == "0"
    assert lab.sql("SELECT COUNT(*) FROM virtual_aliases WHERE source = 'a@cli.test'").strip() == "0"


def test_new_user_receives_mail(sockmail, lab, build, clidomain):
    assert sockmail("user", "add", "fresh@cli.test", "-p", "x").returncode == 0
    before = len(lab.new_messages("fresh@cli.test"))
    script = (b"LHLO me\r\nMAIL FROM:<sender@example.org>\r\nRCPT TO:<fresh@cli.test>\r\nDATA\r\n"
              b"Subject: welcome\r\n\r\nhello new user\r\n.\r\nQUIT\r\n")
    out = subprocess.run([build / "handlers/lmtp-handler/lmtp-handler", "-c", lab.config],
                         input=script, capture_output=True, timeout=20).stdout
    codes = [l[:3] for l in out.split(b"\r\n") if l and l[3:4] == b" "]
    assert codes == [b"220", b"250", b"250", b"250", b"354", b"250", b"221"], out
    msgs = lab.new_messages("fresh@cli.test")
    assert len(msgs) == before + 1
    assert b"hello new user" in msgs[-1].read_bytes()
    # lookup shows that very Maildir
    r = sockmail("lookup", "fresh@cli.test", "--json")
    assert json.loads(r.stdout)["mailboxes"] == [
        {"address": "fresh@cli.test", "maildir": str(lab.maildir("fresh@cli.test"))}]


# ---- lookup ----

def test_lookup_user(sockmail, lab):
    r = sockmail("lookup", "alice@example.com")
    assert r.returncode == 0
    assert "domain: example.com (local)" in r.stdout
    assert "alice@example.com: user -> " + str(lab.maildir("alice@example.com")) in r.stdout
    j = json.loads(sockmail("lookup", "--json", "alice@example.com").stdout)
    assert j["local"] is True and j["result"] == "deliver"
    assert j["tree"] == [{"depth": 0, "address": "alice@example.com", "kind": "user", "detail": None}]
    assert j["mailboxes"] == [{"address": "alice@example.com",
                               "maildir": str(lab.maildir("alice@example.com"))}]
    assert j["remote"] == []


def test_lookup_alias_and_chain(sockmail, lab):
    j = json.loads(sockmail("lookup", "all@example.com", "--json").stdout)
    assert [(s["depth"], s["address"], s["kind"]) for s in j["tree"]] == [
        (0, "all@example.com", "alias"),
        (1, "alice@example.com", "user"),
        (1, "bob@example.com", "user")]
    assert sorted(m["address"] for m in j["mailboxes"]) == ["alice@example.com", "bob@example.com"]

    r = sockmail("lookup", "team@example.net")
    assert r.returncode == 0
    lines = r.stdout.splitlines()
    tree = lines[lines.index("expansion:") + 1:]
    assert tree[0].startswith("  team@example.net: alias")
    assert tree[1].startswith("    all@example.com: alias")
    assert tree[2].startswith("      alice@example.com: user -> ")
    assert tree[3].startswith("      bob@example.com: user -> ")
    assert "deliver to 2 mailboxes:" in r.stdout


def test_lookup_unknown_remote_and_bad(sockmail):
    r = sockmail("lookup", "nobody@example.com")
    assert r.returncode == 1
    assert "unknown" in r.stdout and "550" in r.stdout
    j = json.loads(sockmail("lookup", "--json", "nobody@example.com").stdout)
    assert j["result"] == "unknown" and j["local"] is True and j["mailboxes"] == []

    r = sockmail("lookup", "someone@remote.example")
    assert r.returncode == 0 and "not local" in r.stdout
    j = json.loads(sockmail("lookup", "--json", "someone@remote.example").stdout)
    assert j["local"] is False and j["result"] == "relay"
    assert j["remote"] == ["someone@remote.example"]

    r = sockmail("lookup", "no address")
    assert r.returncode == 1 and "not a valid address" in r.stderr


def test_lookup_catchall(sockmail, clidomain):
    assert sockmail("user", "add", "u@cli.test", "-p", "x").returncode == 0
    assert sockmail("alias", "add", "@cli.test", "u@cli.test").returncode == 0
    j = json.loads(sockmail("lookup", "--json", "whoever@cli.test").stdout)
    assert [(s["depth"], s["kind"]) for s in j["tree"]] == [(0, "catch-all"), (1, "user")]
    assert [m["address"] for m in j["mailboxes"]] == ["u@cli.test"]


# ---- check ----

def findings(out):
    return [l for l in out.splitlines() if l.split(":", 1)[0] in ("ok", "warning", "error")]


def test_check_lab_all_ok(lab, sockmail, tmp_path):
    # A queue of its own: other tests may leave mail in the lab's.
    conf = tmp_path / "check.conf"
    conf.write_text(re.sub(r"(?m)^queue = .*$", f"queue = {tmp_path}/queue", lab.config.read_text()))
    r = sockmail("check", config=conf)
    assert r.returncode == 0, r.stdout + r.stderr
    f = findings(r.stdout)
    assert len(f) >= 8 and all(l.startswith("ok: ") for l in f), r.stdout
    assert any("cannot read virtual_users.password" in l for l in f)
    assert any("matches certificate" in l for l in f)
    assert any("Maildir root" in l for l in f)
    assert any(l == f"ok: queue {tmp_path}/queue is empty" for l in f), f
    j = json.loads(sockmail("check", "--json", config=conf).stdout)
    assert j["errors"] == 0 and j["warnings"] == 0 and j["ok"] == len(f)


def tls_config(lab, tmp_path, cert, key):
    text = lab.config.read_text()
    text = text.replace(f"cert = {lab.dir}/tls/cert.pem", f"cert = {cert}")
    text = text.replace(f"key = {lab.dir}/tls/key.pem", f"key = {key}")
    conf = tmp_path / "tls.conf"
    conf.write_text(text)
    return conf


def openssl(*args):
    subprocess.run(["openssl", *map(str, args)], check=True, capture_output=True, timeout=60)


def test_check_mismatched_key(sockmail, lab, tmp_path):
    other = tmp_path / "other-key.pem"
    openssl("genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out", other)
    os.chmod(other, 0o600)
    conf = tls_config(lab, tmp_path, lab.dir / "tls/cert.pem", other)
    r = sockmail("check", config=conf)
    assert r.returncode == 1
    errors = [l for l in findings(r.stdout) if l.startswith("error: ")]
    assert len(errors) == 1 and "does not belong to certificate" in errors[0]
    assert " — fix: " in errors[0]


def test_check_unparsable_and_expiring(sockmail, lab, tmp_path):
    garbage = tmp_path / "garbage.pem"
    garbage.write_text("-----BEGIN CERTIFICATE-----\nnot base64!\n-----END CERTIFICATE-----\n")
    conf = tls_config(lab, tmp_path, garbage, lab.dir / "tls/key.pem")
    r = sockmail("check", config=conf)
    assert r.returncode == 1 and "does not parse" in r.stdout

    key, cert = tmp_path / "k.pem", tmp_path / "c.pem"
    openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
            "-keyout", key, "-out", cert, "-days", "10", "-subj", "/CN=soon")
    os.chmod(key, 0o600)
    conf = tls_config(lab, tmp_path, cert, key)
    r = sockmail("check", config=conf)
    assert r.returncode == 0, r.stdout
    warnings = [l for l in findings(r.stdout) if l.startswith("warning: ")]
    assert len(warnings) == 1 and "expires" in warnings[0] and "renew" in warnings[0]


def test_check_lookup_account_reading_passwords(sockmail, lab):
    lab.sql("GRANT SELECT (password) ON virtual_users TO 'sockmail_lookup'@'localhost'")
    try:
        r = sockmail("check")
        assert r.returncode == 1
        errors = [l for l in findings(r.stdout) if l.startswith("error: ")]
        assert len(errors) == 1
        assert "can read virtual_users.password" in errors[0]
        assert "fix: REVOKE SELECT (password) ON virtual_users FROM 'sockmail_lookup'" in errors[0]
    finally:
        lab.sql("REVOKE SELECT (password) ON virtual_users FROM 'sockmail_lookup'@'localhost'")
    assert sockmail("check").returncode == 0


def test_check_maildir_root(sockmail, lab, tmp_path):
    root = tmp_path / "mailroot"
    conf = tmp_path / "mr.conf"
    conf.write_text(lab.config.read_text().replace(f"mail_location = {lab.dir}/mail/%d/%n",
                                                   f"mail_location = {root}/%d/%n"))
    r = sockmail("check", config=conf)
    assert r.returncode == 1 and f"Maildir root {root}" in r.stdout and "mkdir -p" in r.stdout
    root.mkdir()
    os.chmod(root, 0o777)
    r = sockmail("check", config=conf)
    assert r.returncode == 1 and "world-writable" in r.stdout and "chmod o-w" in r.stdout
    os.chmod(root, 0o750)
    assert sockmail("check", config=conf).returncode == 0


def test_database_down_is_temporary(sockmail, lab, clidomain):
    lab.db_stop()
    try:
        r = sockmail("check")
        assert r.returncode == 75, r.stdout
        assert "cannot connect" in r.stdout and "start MariaDB" in r.stdout
        for args in (["domain", "list"], ["user", "add", "x@cli.test", "-p", "x"],
                     ["alias", "list"], ["lookup", "alice@example.com"]):
            r = sockmail(*args)
            assert r.returncode == 75, (args, r.stderr)
            assert "try again" in r.stderr
        # pw needs no database
        assert sockmail("pw", "-p", "x").returncode == 0
    finally:
        lab.db_start()
    assert sockmail("domain", "list").returncode == 0


def test_lookup_loop_and_delimiter(sockmail, lab, clidomain, tmp_path):
    assert sockmail("user", "add", "u@cli.test", "-p", "x").returncode == 0
    assert sockmail("alias", "add", "a@cli.test", "b@cli.test").returncode == 0
    assert sockmail("alias", "add", "b@cli.test", "a@cli.test", "u@cli.test").returncode == 0
    j = json.loads(sockmail("lookup", "--json", "a@cli.test").stdout)
    assert [(s["depth"], s["address"], s["kind"]) for s in j["tree"]] == [
        (0, "a@cli.test", "alias"), (1, "b@cli.test", "alias"),
        (2, "a@cli.test", "loop"), (2, "u@cli.test", "user")]
    assert [m["address"] for m in j["mailboxes"]] == ["u@cli.test"]
    assert "loop" in j["note"]

    conf = tmp_path / "delim.conf"
    conf.write_text(lab.config.read_text() + "\n[delivery]\nrecipient_delimiter = +\n")
    r = sockmail("lookup", "u+tag@cli.test", config=conf)
    assert r.returncode == 0
    assert "  u+tag@cli.test: delimiter (recipient_delimiter: tried as u@cli.test)" in r.stdout
    assert "    u@cli.test: user -> " in r.stdout
    assert sockmail("lookup", "u+tag@cli.test").returncode == 1   # no delimiter: unknown


def test_check_admin_account_missing_a_privilege(sockmail, lab):
    lab.sql("REVOKE DELETE ON virtual_aliases FROM 'sockmail_admin'@'localhost'")
    try:
        r = sockmail("check")
        assert r.returncode == 1
        errors = [l for l in findings(r.stdout) if l.startswith("error: ")]
        assert len(errors) == 1 and "DELETE FROM virtual_aliases" in errors[0]
        assert "fix: apply sql/grants.sql" in errors[0]
    finally:
        lab.sql("GRANT DELETE ON virtual_aliases TO 'sockmail_admin'@'localhost'")
    assert sockmail("check").returncode == 0


# -- queue ------------------------------------------------------------------

def test_queue_list_show_del(lab, build, sockmail, tmp_path):
    """Two messages held in a private queue (alice's Maildir is in the way):
    list (text and JSON), show, show --message, del, and the errors."""
    mail, queue = tmp_path / "mail", tmp_path / "queue"
    conf = tmp_path / "q.conf"
    text = lab.config.read_text()
    text = re.sub(r"(?m)^mail_location = .*$", f"mail_location = {mail}/%d/%n", text)
    text = re.sub(r"(?m)^queue = .*$", f"queue = {queue}", text)
    conf.write_text(text)
    r = sockmail("queue", config=conf)
    assert r.returncode == 0 and r.stdout == "the queue is empty\n", r.stdout + r.stderr

    (mail / "example.com").mkdir(parents=True)
    (mail / "example.com" / "alice").write_text("in the way\n")
    script = (b"EHLO me\r\nMAIL FROM:<s@example.org>\r\nRCPT TO:<all@example.com>\r\nDATA\r\n"
              b"Subject: held\r\n\r\nheld body\r\n.\r\n"
              b"MAIL FROM:<t@example.org>\r\nRCPT TO:<alice@example.com>\r\nDATA\r\n"
              b"Subject: second\r\n\r\nsecond\r\n.\r\nQUIT\r\n")
    out = subprocess.run([build / "handlers/smtp-handler/smtp-handler", "-c", conf, "--mode", "mx"],
                         input=script, capture_output=True, timeout=30).stdout
    ids = re.findall(rb"250 2\.0\.0 Ok: queued as (\S+)", out)
    assert len(ids) == 2, out
    first, second = (i.decode() for i in ids)

    r = sockmail("queue", "list", "--json", config=conf)
    assert r.returncode == 0, r.stderr
    listed = json.loads(r.stdout)
    assert [m["id"] for m in listed] == [first, second]
    assert listed[0]["from"] == "s@example.org" and listed[0]["size"] == len("Subject: held\n\nheld body\n")
    states = {(x["destination"], x["rcpt"], x["local"], x["state"]) for x in listed[0]["recipients"]}
    assert states == {("alice@example.com", "all@example.com", True, "pending"),
                      ("bob@example.com", "all@example.com", True, "delivered")}
    r = sockmail("queue", config=conf)
    assert first in r.stdout and "2 messages; pending: 2 local" in r.stdout, r.stdout

    r = sockmail("queue", "show", first, config=conf)
    assert r.returncode == 0 and "pending    local   alice@example.com  (RCPT all@example.com)" in r.stdout
    r = sockmail("queue", "show", first, "--message", config=conf)
    assert r.returncode == 0 and r.stdout.startswith("Received: from me")
    assert r.stdout.endswith("Subject: held\n\nheld body\n"), r.stdout

    r = sockmail("queue", "del", first, config=conf)
    assert r.returncode == 0 and "1 recipient had not received it" in r.stdout, r.stdout + r.stderr
    assert not (queue / "msg" / f"{first}.env").exists() and not (queue / "msg" / f"{first}.body").exists()
    assert [m["id"] for m in json.loads(sockmail("queue", "--json", config=conf).stdout)] == [second]

    # Errors: gone, not an id, unknown action, bad options.
    r = sockmail("queue", "show", first, config=conf)
    assert r.returncode == 1 and "not in the queue" in r.stderr
    r = sockmail("queue", "del", "../../etc/passwd", config=conf)
    assert r.returncode == 1 and "not a queue id" in r.stderr
    assert sockmail("queue", "frob", config=conf).returncode == 2
    assert sockmail("queue", "show", config=conf).returncode == 2
    assert sockmail("queue", "show", second, "--json", "--message", config=conf).returncode == 2
    r = sockmail("queue", "--help", config=conf)
    assert r.returncode == 0 and r.stdout.startswith("usage: sockmail [-c FILE] queue")

    # The flush still finds what is left once alice's Maildir is fixed.
    (mail / "example.com" / "alice").unlink()
    f = subprocess.run([build / "handlers/smtp-handler/smtp-handler", "-c", conf, "--flush-queue"],
                       capture_output=True, text=True, timeout=30)
    assert f.returncode == 0, f.stderr
    assert sockmail("queue", config=conf).stdout == "the queue is empty\n"
    assert len(os.listdir(mail / "example.com/alice/new")) == 1


def test_queue_del_waits_for_a_delivery(lab, sockmail, tmp_path):
    """A message locked by a delivery in progress is not deleted under it."""
    import fcntl
    queue = tmp_path / "queue"
    (queue / "msg").mkdir(parents=True)
    conf = tmp_path / "q.conf"
    conf.write_text(re.sub(r"(?m)^queue = .*$", f"queue = {queue}", lab.config.read_text()))
    qid = "6b0ccd00.00001.1.00000001"
    (queue / "msg" / f"{qid}.body").write_text("Subject: x\n\nx\n")
    (queue / "msg" / f"{qid}.env").write_text(
        f"sockmail-queue 1\nid={qid} received=1796000000 from=a@example.org smtputf8=0 body=\n"
        "ret= envid= auth=\nhead=\nr P R dest=someone@remote.example rcpt=someone@remote.example "
        "notify= orcpt=\n")
    r = sockmail("queue", "--json", config=conf)
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)[0]["recipients"][0]["local"] is False
    assert "1 remote" in sockmail("queue", config=conf).stdout
    r = sockmail("check", config=conf)
    assert f"warning: queue {queue}: 1 remote recipients wait" in r.stdout, r.stdout
    with open(queue / "msg" / f"{qid}.env") as held:
        fcntl.flock(held, fcntl.LOCK_EX)
        r = sockmail("queue", "del", qid, config=conf)
        assert r.returncode == 75 and "being delivered" in r.stderr
    assert sockmail("queue", "del", qid, config=conf).returncode == 0
    assert not list((queue / "msg").iterdir())
