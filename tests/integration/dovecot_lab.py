"""A private Dovecot (Debian's 2.3 package) configured like the tutorial:
passdb sql (driver mysql, the tutorial's password_query) against the lab's
MariaDB, userdb static, Maildir at DOVECOT_MAIL/%d/%n. Used as the reference
LMTP server beside sockmail's lmtp-handler (tests, bench/), and meant to grow
IMAP/POP3/auth for later comparisons: pass protocols=("lmtp", "imap", ...)
and add listeners through `extra`.

    dv = DovecotLab(tmpdir, lab, protocols=("lmtp",)).start()
    ... LMTP on dv.lmtp_socket (and 127.0.0.1:dv.lmtp_port if asked) ...
    dv.stop()

Layout under ROOT: dovecot.conf, dovecot-sql.conf.ext (0600: it holds the
auth password), base/ (base_dir: sockets, master.pid), state/ (state_dir),
dovecot.log. Mail goes to MAIL_ROOT (default LAB/dovecot-mail), a separate
tree from sockmail's LAB/mail so the two never mix mailboxes.

Notes and pitfalls:
- No !include of /etc/dovecot: the config is complete by itself, so the
  system's conf.d cannot change a test.
- Running as root: the userdb gives the uid/gid of the user running the lab,
  except for root. Dovecot refuses mail access as root at three levels:
  first_valid_uid (default 500: "Mail access for users with UID 0 not
  permitted"), the userdb ("userdb returned 0 as uid", even with
  first_valid_uid = 0), and privilege dropping with mail_uid = 0 ("Couldn't
  drop privileges: Mail access not allowed for root"). So under root the
  mail is owned by Debian's `mail` user (uid/gid 8; MAIL_USER), the role the
  tutorial gives its vmail user (5000), first_valid_uid/gid are lowered to
  it, MAIL_ROOT is chowned to it and its ancestors get o+x.
- Running as non-root: Dovecot then cannot switch users, so
  default_internal_user/default_login_user are set to that user too.
- auth-worker (the process that talks to MariaDB) runs as root by default
  in 2.3 and as the running user here; the DB socket must be reachable by it.
- mail_fsync: Dovecot's default is "optimized" (fsync the message file
  before it becomes visible, skip some index/uidlist fsyncs). We set
  "always" so the comparison with lmtp-handler (which fsyncs the file and
  the directory before answering 250) is like for like.
- postmaster_address must resolve; we set it explicitly so a rejected
  delivery (LMTP 5xx with a bounce) does not depend on the hostname.
- ssl = no: no certificate is needed for LMTP on loopback; add ssl_cert/key
  through `extra` when IMAPS/POP3S arrive.
- auth_socket=True (or a path) adds the tutorial's auth client listener,
  `service auth { unix_listener .../private/auth }` (the socket Postfix's
  `smtpd_sasl_type = dovecot` talks to), as ROOT/auth.sock, mode 0666.
  Dovecot picks the listener type from the file name: anything not named
  master/userdb/login/token-login is a client socket, as for Postfix.
"""
import os
import pathlib
import pwd
import grp
import signal
import socket
import subprocess
import time

from postfix_lab import ensure_reachable

DOVECOT = "/usr/sbin/dovecot"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class DovecotLab:
    """One private Dovecot. LAB is conftest's Lab (needs .dir, .mysql_socket).
    lmtp_port=True picks a free loopback port for an LMTP inet listener too.
    EXTRA is appended verbatim to dovecot.conf (for protocol sections)."""

    def __init__(self, root, lab, protocols=("lmtp",), mail_root=None,
                 lmtp_port=None, mail_fsync="always", extra="", mail_user="mail",
                 auth_socket=None, pop3_port=None):
        self.root = pathlib.Path(root).resolve()
        self.lab = lab
        self.protocols = tuple(protocols)
        self.mail_root = pathlib.Path(mail_root or (pathlib.Path(lab.dir) / "dovecot-mail")).resolve()
        self.lmtp_port = free_port() if lmtp_port is True else lmtp_port
        self.mail_fsync = mail_fsync
        self.extra = extra
        self.conf = self.root / "dovecot.conf"
        self.base_dir = self.root / "base"
        self.state_dir = self.root / "state"
        self.log_path = self.root / "dovecot.log"
        self.lmtp_socket = self.root / "lmtp.sock"
        # None: no auth client listener (Dovecot's own base/auth-client only).
        self.auth_socket = (self.root / "auth.sock" if auth_socket is True
                            else pathlib.Path(auth_socket) if auth_socket else None)
        # "pop3" in protocols: a POP3 listener on 127.0.0.1 (True: a free port).
        self.pop3_port = free_port() if pop3_port is True or (
            pop3_port is None and "pop3" in self.protocols) else pop3_port
        self.started = False
        if os.getuid() == 0:
            # Dovecot never touches mail as root (see the module comment).
            pw = pwd.getpwnam(mail_user)
            self.mail_uid, self.mail_gid = pw.pw_uid, pw.pw_gid
        else:
            self.mail_uid, self.mail_gid = os.getuid(), os.getgid()

    def maildir(self, address):
        local, domain = address.split("@")
        return self.mail_root / domain / local

    def new_messages(self, address):
        d = self.maildir(address) / "new"
        return sorted(d.iterdir()) if d.exists() else []

    # -- configuration ----------------------------------------------------

    def _sql_conf(self):
        password = (pathlib.Path(self.lab.dir) / "secrets" / "auth").read_text().strip()
        return (
            "driver = mysql\n"
            f"connect = host={self.lab.mysql_socket} dbname=mailserver "
            f"user=sockmail_auth password={password}\n"
            "default_pass_scheme = SHA512-CRYPT\n"
            # The tutorial's query.
            "password_query = SELECT email as user, password FROM virtual_users WHERE email='%u';\n"
        )

    def _conf(self):
        uid, gid = os.getuid(), os.getgid()
        user = pwd.getpwuid(uid).pw_name
        group = grp.getgrgid(gid).gr_name
        muid, mgid = self.mail_uid, self.mail_gid
        lines = [
            f"protocols = {' '.join(self.protocols)}",
            f"base_dir = {self.base_dir}",
            f"state_dir = {self.state_dir}",
            f"instance_name = dovecot-lab-{os.getpid()}-{id(self):x}",
            f"log_path = {self.log_path}",
            f"info_log_path = {self.log_path}",
            "listen = 127.0.0.1",
            "ssl = no",
            "disable_plaintext_auth = no",
            "auth_mechanisms = plain login",
            f"mail_location = maildir:{self.mail_root}/%d/%n",
            f"mail_fsync = {self.mail_fsync}",
            "postmaster_address = postmaster@example.com",
            "hostname = dovecot.lab.test",
            # See the module comment: uid 8 (mail) when the tests run as root.
            f"first_valid_uid = {min(muid, 500)}",
            f"first_valid_gid = {min(mgid, 1)}",
            "passdb {",
            "  driver = sql",
            f"  args = {self.root / 'dovecot-sql.conf.ext'}",
            "}",
            "userdb {",
            "  driver = static",
            f"  args = uid={muid} gid={mgid} home={self.mail_root}/%d/%n",
            "}",
            "service auth-worker {",
            f"  user = {user}",
            "}",
        ]
        if uid != 0:
            lines += [f"default_internal_user = {user}",
                      f"default_login_user = {user}",
                      f"default_internal_group = {group}"]
        if "lmtp" in self.protocols:
            lines += ["service lmtp {",
                      f"  unix_listener {self.lmtp_socket} {{",
                      "    mode = 0666",
                      "  }"]
            if self.lmtp_port:
                lines += ["  inet_listener lmtp {",
                          "    address = 127.0.0.1",
                          f"    port = {self.lmtp_port}",
                          "  }"]
            lines += ["}"]
        if "pop3" in self.protocols and self.pop3_port:
            lines += ["service pop3-login {",
                      "  inet_listener pop3 {",
                      "    address = 127.0.0.1",
                      f"    port = {self.pop3_port}",
                      "  }",
                      "  inet_listener pop3s {",
                      "    port = 0",
                      "  }",
                      "}"]
        if self.auth_socket:
            # The tutorial's listener for Postfix (there: user/group postfix, 0660).
            lines += ["service auth {",
                      f"  unix_listener {self.auth_socket} {{",
                      "    mode = 0666",
                      "  }",
                      "}"]
        if self.extra:
            lines.append(self.extra)
        return "\n".join(lines) + "\n"

    def write_config(self):
        for d in (self.root, self.base_dir, self.state_dir, self.mail_root):
            d.mkdir(parents=True, exist_ok=True)
        os.chmod(self.root, 0o755)
        os.chown(self.mail_root, self.mail_uid, self.mail_gid)
        # The mail user must reach its mail root (a mkdtemp() lab is 0700).
        ensure_reachable(self.mail_root, user=pwd.getpwuid(self.mail_uid).pw_name)
        sql = self.root / "dovecot-sql.conf.ext"
        sql.write_text(self._sql_conf())
        os.chmod(sql, 0o600)
        self.conf.write_text(self._conf())

    # -- running ----------------------------------------------------------

    def start(self, timeout=15.0):
        self.write_config()
        # The daemonised master inherits stdout/stderr: pipes would never
        # reach EOF, so its early errors go to a file instead.
        err = self.root / "dovecot.stderr"
        with open(err, "w") as f:
            r = subprocess.run([DOVECOT, "-c", str(self.conf)], stdin=subprocess.DEVNULL,
                               stdout=f, stderr=subprocess.STDOUT, timeout=30)
        if r.returncode != 0:
            raise RuntimeError(f"dovecot failed to start:\n{err.read_text()}\n{self.log()}")
        self.started = True
        deadline = time.monotonic() + timeout
        want = []
        if "lmtp" in self.protocols:
            want.append(self.lmtp_socket)
        if self.auth_socket:
            want.append(self.auth_socket)
        while time.monotonic() < deadline:
            if (all(p.exists() for p in want) and self._greets() and self._auth_greets()
                    and self._pop3_greets()):
                return self
            time.sleep(0.05)
        self.stop()
        raise TimeoutError(f"dovecot did not come up\n{self.log()}")

    def _greets(self):
        if "lmtp" not in self.protocols:
            return True
        try:
            with socket.socket(socket.AF_UNIX) as s:
                s.settimeout(5)
                s.connect(str(self.lmtp_socket))
                return s.recv(512).startswith(b"220")
        except OSError:
            return False

    def _pop3_greets(self):
        if "pop3" not in self.protocols or not self.pop3_port:
            return True
        try:
            with socket.create_connection(("127.0.0.1", self.pop3_port), timeout=5) as s:
                return s.recv(512).startswith(b"+OK")
        except OSError:
            return False

    def _auth_greets(self):
        """The auth process answers a connection with its handshake."""
        if not self.auth_socket:
            return True
        try:
            with socket.socket(socket.AF_UNIX) as s:
                s.settimeout(5)
                s.connect(str(self.auth_socket))
                data = b""
                for _ in range(64):
                    chunk = s.recv(4096)
                    if not chunk:
                        return False
                    data += chunk
                    if b"\nDONE\n" in b"\n" + data:
                        return data.startswith(b"VERSION\t1\t")
                return False
        except OSError:
            return False

    def master_pid(self):
        try:
            return int((self.base_dir / "master.pid").read_text().split()[0])
        except (OSError, ValueError, IndexError):
            return None

    def stop(self, timeout=10.0):
        if not self.started:
            return
        self.started = False
        pid = self.master_pid()
        if pid is None:
            return
        # SIGTERM to our own master (by PID, never by name) stops its children.
        try:
            os.kill(pid, signal.SIGTERM)
        except ProcessLookupError:
            return
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                return
            time.sleep(0.05)
        os.kill(pid, signal.SIGKILL)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    def log(self):
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""


def _main(argv):
    """python3 dovecot_lab.py start [--auth] ROOT LABDIR [PROTOCOLS...] | stop ROOT
    for shell scripts (bench/run, bench/run-auth). start prints the LMTP
    socket path, and with --auth a second line, the auth client socket
    (ROOT/auth.sock); the master daemonises, so stop finds it again through
    ROOT/base/master.pid."""
    import types
    auth = False
    if len(argv) >= 2 and argv[0] == "start" and argv[1] == "--auth":
        auth = True
        argv = [argv[0]] + argv[2:]
    if len(argv) >= 3 and argv[0] == "start":
        labdir = pathlib.Path(argv[2]).resolve()
        lab = types.SimpleNamespace(dir=labdir, mysql_socket=labdir / "mysql.sock")
        dv = DovecotLab(argv[1], lab, protocols=tuple(argv[3:]) or ("lmtp",),
                        auth_socket=auth or None).start()
        print(dv.lmtp_socket)
        if dv.auth_socket:
            print(dv.auth_socket)
        return 0
    if len(argv) == 2 and argv[0] == "stop":
        lab = types.SimpleNamespace(dir=pathlib.Path(argv[1]), mysql_socket=None)
        dv = DovecotLab(argv[1], lab)
        dv.started = True
        dv.stop()
        return 0
    print(_main.__doc__)
    return 2


if __name__ == "__main__":
    import sys
    sys.exit(_main(sys.argv[1:]))
