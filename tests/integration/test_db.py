"""The lab database (tests/lab) and sql/: schema, sample data, the three
accounts and what each may read, and a lab that keeps its data over a restart."""
import os
import pathlib
import shutil
import stat
import subprocess
import tempfile

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
LAB = ROOT / "tests/lab"

SAMPLE_USERS = {
    "alice@example.com": "alice-secret",
    "bob@example.com": "bob-secret",
    "carol@example.net": "carol-secret",
}
SAMPLE_ALIASES = {
    ("all@example.com", "alice@example.com"),
    ("all@example.com", "bob@example.com"),
    ("postmaster@example.com", "alice@example.com"),
    ("team@example.net", "all@example.com"),
}


def as_account(lab, account, statement):
    """Runs STATEMENT as sockmail_ACCOUNT with the password from the lab's
    secret file; returns the CompletedProcess (not checked)."""
    secret = (lab.dir / "secrets" / account).read_text().strip()
    return subprocess.run(
        ["mariadb", "--no-defaults", f"--socket={lab.mysql_socket}", "-u", f"sockmail_{account}",
         "-N", "-B", "mailserver", "-e", statement],
        env=dict(os.environ, MYSQL_PWD=secret), capture_output=True, text=True)


def rows(text):
    return [tuple(line.split("\t")) for line in text.splitlines() if line]


def test_three_accounts_exist(lab):
    users = {r[0] for r in rows(lab.sql(
        "SELECT user FROM mysql.user WHERE host = 'localhost' AND user LIKE 'sockmail\\_%'"))}
    assert users == {"sockmail_lookup", "sockmail_auth", "sockmail_admin"}


def test_secret_files_are_private(lab):
    for account in ("lookup", "auth", "admin"):
        f = lab.dir / "secrets" / account
        assert stat.S_IMODE(f.stat().st_mode) == 0o600
        assert len(f.read_text().strip()) >= 32
    assert stat.S_IMODE((lab.dir / "tls/key.pem").stat().st_mode) == 0o600


def test_lookup_account_cannot_read_passwords(lab):
    r = as_account(lab, "lookup", "SELECT password FROM virtual_users")
    assert r.returncode != 0
    assert "command denied" in r.stderr and "password" in r.stderr
    r = as_account(lab, "lookup", "SELECT * FROM virtual_users")
    assert r.returncode != 0
    r = as_account(lab, "lookup", "UPDATE virtual_users SET email = email")
    assert r.returncode != 0


def test_lookup_account_reads_what_delivery_needs(lab):
    r = as_account(lab, "lookup",
                   "SELECT id, domain_id, email FROM virtual_users WHERE email = 'alice@example.com'")
    assert r.returncode == 0, r.stderr
    assert rows(r.stdout)[0][2] == "alice@example.com"
    for table in ("virtual_domains", "virtual_aliases"):
        r = as_account(lab, "lookup", f"SELECT COUNT(*) FROM {table}")
        assert r.returncode == 0, r.stderr


def test_auth_account_reads_passwords_but_cannot_write(lab):
    r = as_account(lab, "auth", "SELECT password FROM virtual_users WHERE email = 'bob@example.com'")
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith("{SHA512-CRYPT}$6$")
    r = as_account(lab, "auth", "DELETE FROM virtual_aliases WHERE source = 'nobody@example.com'")
    assert r.returncode != 0 and "command denied" in r.stderr


def test_admin_account_writes(lab):
    r = as_account(lab, "admin", "INSERT INTO virtual_domains (name) VALUES ('admin-test.example'); "
                   "DELETE FROM virtual_domains WHERE name = 'admin-test.example'")
    assert r.returncode == 0, r.stderr
    r = as_account(lab, "admin", "DROP TABLE virtual_aliases")
    assert r.returncode != 0


def test_sample_data(lab):
    domains = {r[0] for r in rows(lab.sql("SELECT name FROM virtual_domains"))}
    assert {"example.com", "example.net"} <= domains
    users = dict(rows(lab.sql("SELECT email, password FROM virtual_users")))
    for email in SAMPLE_USERS:
        assert users[email].startswith("{SHA512-CRYPT}$6$")
    aliases = set(rows(lab.sql("SELECT source, destination FROM virtual_aliases")))
    assert SAMPLE_ALIASES <= aliases


def test_sample_hashes_verify(lab):
    users = dict(rows(lab.sql("SELECT email, password FROM virtual_users")))
    for email, password in SAMPLE_USERS.items():
        hashed = users[email].removeprefix("{SHA512-CRYPT}")
        salt = hashed.split("$")[2]
        made = subprocess.run(["openssl", "passwd", "-6", "-salt", salt, password],
                              check=True, capture_output=True, text=True).stdout.strip()
        assert made == hashed, email
        wrong = subprocess.run(["openssl", "passwd", "-6", "-salt", salt, password + "x"],
                               check=True, capture_output=True, text=True).stdout.strip()
        assert wrong != hashed


def test_schema_and_grants_apply_twice(lab):
    before = lab.sql("SELECT COUNT(*) FROM virtual_users; SELECT COUNT(*) FROM virtual_aliases")
    for name in ("schema.sql", "grants.sql", "schema.sql", "grants.sql"):
        subprocess.run(["mariadb", "--no-defaults", "-u", "root", f"--socket={lab.mysql_socket}",
                        "mailserver"], stdin=open(ROOT / "sql" / name), check=True,
                       capture_output=True)
    assert lab.sql("SELECT COUNT(*) FROM virtual_users; SELECT COUNT(*) FROM virtual_aliases") == before
    r = as_account(lab, "lookup", "SELECT password FROM virtual_users")
    assert r.returncode != 0


def test_schema_keeps_tutorial_columns(lab):
    cols = rows(lab.sql(
        "SELECT table_name, column_name, column_type, is_nullable FROM information_schema.columns "
        "WHERE table_schema = 'mailserver' ORDER BY table_name, ordinal_position"))
    assert cols == [
        ("virtual_aliases", "id", "int(11)", "NO"),
        ("virtual_aliases", "domain_id", "int(11)", "NO"),
        ("virtual_aliases", "source", "varchar(100)", "NO"),
        ("virtual_aliases", "destination", "varchar(100)", "NO"),
        ("virtual_domains", "id", "int(11)", "NO"),
        ("virtual_domains", "name", "varchar(50)", "NO"),
        ("virtual_users", "id", "int(11)", "NO"),
        ("virtual_users", "domain_id", "int(11)", "NO"),
        ("virtual_users", "password", "varchar(255)", "NO"),
        ("virtual_users", "email", "varchar(100)", "NO"),
    ]
    # Case-insensitive: a lookup in any case finds the row.
    assert lab.sql("SELECT email FROM virtual_users WHERE email = 'ALICE@Example.COM'").strip() \
        == "alice@example.com"


def test_tutorial_schema_upgrade(lab):
    """schema.sql over the tutorial's own utf8 tables (in a scratch database)
    adds the alias index and changes nothing else."""
    tutorial = """
    CREATE TABLE virtual_domains (id int(11) NOT NULL auto_increment, name varchar(50) NOT NULL,
      PRIMARY KEY (id)) ENGINE=InnoDB DEFAULT CHARSET=utf8;
    CREATE TABLE virtual_users (id int(11) NOT NULL auto_increment, domain_id int(11) NOT NULL,
      password varchar(255) NOT NULL, email varchar(100) NOT NULL, PRIMARY KEY (id),
      UNIQUE KEY email (email),
      FOREIGN KEY (domain_id) REFERENCES virtual_domains(id) ON DELETE CASCADE) ENGINE=InnoDB DEFAULT CHARSET=utf8;
    CREATE TABLE virtual_aliases (id int(11) NOT NULL auto_increment, domain_id int(11) NOT NULL,
      source varchar(100) NOT NULL, destination varchar(100) NOT NULL, PRIMARY KEY (id),
      FOREIGN KEY (domain_id) REFERENCES virtual_domains(id) ON DELETE CASCADE) ENGINE=InnoDB DEFAULT CHARSET=utf8;
    INSERT INTO virtual_domains VALUES (1, 'd.example');
    INSERT INTO virtual_aliases VALUES (1, 1, 'a@d.example', 'b@d.example');
    """
    db = "sockmail_upgrade_test"
    lab.sql(f"DROP DATABASE IF EXISTS {db}; CREATE DATABASE {db}; USE {db}; {tutorial}")
    try:
        for _ in range(2):
            subprocess.run(["mariadb", "--no-defaults", "-u", "root",
                            f"--socket={lab.mysql_socket}", db],
                           stdin=open(ROOT / "sql/schema.sql"), check=True, capture_output=True)
        keys = lab.sql(f"SHOW INDEX FROM {db}.virtual_aliases")
        assert "\tsource\t" in keys
        assert lab.sql(f"SELECT destination FROM {db}.virtual_aliases").strip() == "b@d.example"
    finally:
        lab.sql(f"DROP DATABASE IF EXISTS {db}")


def test_lab_files(lab):
    conf = lab.config.read_text()
    for line in (f"hosts = {lab.mysql_socket}", f"mail_location = {lab.dir}/mail/%d/%n",
                 f"lookup_password_file = {lab.dir}/secrets/lookup",
                 f"cert = {lab.dir}/tls/cert.pem", f"key = {lab.dir}/tls/key.pem"):
        assert line in conf
    assert (lab.dir / "mail").is_dir() and (lab.dir / "queue").is_dir()
    text = subprocess.run(["openssl", "x509", "-in", str(lab.dir / "tls/cert.pem"), "-noout", "-text"],
                          check=True, capture_output=True, text=True).stdout
    assert "id-ecPublicKey" in text and "P-256" in text and "DNS:localhost" in text
    pub_cert = subprocess.run(["openssl", "x509", "-in", str(lab.dir / "tls/cert.pem"), "-noout",
                               "-pubkey"], check=True, capture_output=True, text=True).stdout
    pub_key = subprocess.run(["openssl", "pkey", "-in", str(lab.dir / "tls/key.pem"), "-pubout"],
                             check=True, capture_output=True, text=True).stdout
    assert pub_cert == pub_key
    env = subprocess.run([str(LAB), "env", str(lab.dir)], check=True, capture_output=True,
                         text=True).stdout.split()
    assert env == [f"SOCKMAIL_LAB={lab.dir}", f"SOCKMAIL_CONFIG={lab.dir}/sockmail.conf"]


def test_lab_keeps_data_over_restart():
    """A lab of its own: stopping the shared one would disturb other tests."""
    d = pathlib.Path(tempfile.mkdtemp(prefix="sockmail-labtest-"))
    sock = d / "mysql.sock"

    def sql(statement):
        return subprocess.run(["mariadb", "--no-defaults", "-u", "root", f"--socket={sock}", "-N",
                               "-B", "mailserver", "-e", statement],
                              capture_output=True, text=True)
    try:
        subprocess.run([str(LAB), "start", str(d)], check=True, timeout=60)
        secret = (d / "secrets/lookup").read_text()
        assert sql("INSERT INTO virtual_domains (name) VALUES ('survives.example')").returncode == 0
        (d / "mail" / "marker").write_text("x")
        pid = (d / "mariadb.pid").read_text().strip()
        # start on a running lab: nothing changes.
        subprocess.run([str(LAB), "start", str(d)], check=True, timeout=60)
        assert (d / "mariadb.pid").read_text().strip() == pid

        subprocess.run([str(LAB), "stop", str(d)], check=True, timeout=60)
        assert not os.path.exists(f"/proc/{pid}") or \
            pathlib.Path(f"/proc/{pid}/comm").read_text().strip() != "mariadbd"
        assert sql("SELECT 1").returncode != 0

        subprocess.run([str(LAB), "start", str(d)], check=True, timeout=60)
        assert sql("SELECT name FROM virtual_domains WHERE name = 'survives.example'").stdout.strip() \
            == "survives.example"
        assert (d / "secrets/lookup").read_text() == secret
        assert (d / "mail" / "marker").read_text() == "x"
        assert sql("SELECT COUNT(*) FROM virtual_users").stdout.strip() == "3"   # not loaded twice

        subprocess.run([str(LAB), "db-stop", str(d)], check=True, timeout=60)
        assert sql("SELECT 1").returncode != 0
        subprocess.run([str(LAB), "db-start", str(d)], check=True, timeout=60)
        assert sql("SELECT 1").returncode == 0
    finally:
        subprocess.run([str(LAB), "stop", str(d)], check=False, timeout=60)
        shutil.rmtree(d, ignore_errors=True)


def test_lab_usage_errors(tmp_path):
    r = subprocess.run([str(LAB), "frobnicate", str(tmp_path)], capture_output=True, text=True)
    assert r.returncode == 2
    r = subprocess.run([str(LAB), "db-start", str(tmp_path)], capture_output=True, text=True)
    assert r.returncode != 0 and "no lab" in r.stderr
