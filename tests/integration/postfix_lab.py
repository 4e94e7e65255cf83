"""A private Postfix (Debian's package) on loopback, configured like the
tutorial's MX: the three mysql: maps against the lab's MariaDB and
virtual_transport = lmtp:unix:SOCKET, so tests can put sockmail's
lmtp-handler (or Dovecot's LMTP) behind a real Postfix.

    pf = PostfixLab(tmpdir, lab, lmtp_socket="/path/lmtp.sock").start()
    ... swaks --server 127.0.0.1:{pf.port} ...
    pf.wait_queue_empty()
    print(pf.maillog())
    pf.stop()

Everything lives under ROOT: ROOT/etc (config_directory: main.cf,
master.cf, the mysql-*.cf maps), ROOT/spool (queue_directory), ROOT/data
(data_directory) and ROOT/maillog. Nothing under /etc/postfix or
/var/spool/postfix is touched; the system instance, if any, is unaffected.

Pitfalls met while writing this (keep them in mind when changing it):
- Postfix daemons run as mail_owner (postfix), not as the user who starts
  Postfix. They must be able to traverse to the queue, to the MariaDB socket
  (the mysql: maps connect lazily, after privileges are dropped) and to the
  LMTP socket, and must have write permission on both sockets. A directory
  from tempfile.mkdtemp() is 0700: ensure_reachable() adds o+x (search, not
  listing) to such directories and makes the LMTP socket 0666
  (systemd-socket-activate creates it 0777 & ~umask = 0755, which postfix
  cannot connect() to: "Permission denied" in the maillog, mail deferred).
- Debian's master.cf chroots most services into the queue directory
  ("y" in the chroot column); then absolute socket paths do not resolve.
  This master.cf says "n" everywhere.
- maillog_file needs the postlog service in master.cf and a
  maillog_file_prefixes entry that covers the file, or postfix refuses to
  start ("maillog_file ... does not match maillog_file_prefixes").
- The queue directory must exist before any postfix command (it chdir()s
  there first: "fatal: chdir(...): No such file or directory"); its
  subdirectories and data_directory are then created with their owners
  (postfix / postdrop) by `postfix start` itself. Keep both outside
  config_directory. Starting costs ~3 s here (postfix-script's checks),
  stopping ~2 s: share one instance per test module.
- compatibility_level must be set or every start logs backwards-compat
  warnings; mynetworks must be explicit, else loopback is "mynetworks"
  and relay rules are never exercised.
- A non-default config directory works for root without being listed in the
  system main.cf's alternate_config_directories; a non-root caller of
  postqueue/postdrop would need that entry.
- smtpd's reverse lookup of 127.0.0.1 can stall on a machine without DNS:
  smtpd_peername_lookup = no.
"""
import os
import pathlib
import pwd
import grp
import socket
import stat
import subprocess
import tempfile
import time

POSTFIX = "/usr/sbin/postfix"
POSTQUEUE = "/usr/sbin/postqueue"
POSTMAP = "/usr/sbin/postmap"

# The tutorial's queries, unchanged (mysql-virtual-*.cf in the seed).
QUERIES = {
    "mysql-virtual-mailbox-domains.cf": "SELECT 1 FROM virtual_domains WHERE name='%s'",
    "mysql-virtual-mailbox-maps.cf": "SELECT 1 FROM virtual_users WHERE email='%s'",
    "mysql-virtual-alias-maps.cf": "SELECT destination FROM virtual_aliases WHERE source='%s'",
}

# Every service runs unchrooted ("n" in the 5th column) so absolute socket
# paths work. unpriv "-" = runs as mail_owner.
MASTER_CF = """\
# service type  private unpriv  chroot  wakeup  maxproc command
{listen} inet n       -       n       -       -       smtpd
pickup    unix  n       -       n       60      1       pickup
cleanup   unix  n       -       n       -       0       cleanup
qmgr      unix  n       -       n       300     1       qmgr
rewrite   unix  -       -       n       -       -       trivial-rewrite
bounce    unix  -       -       n       -       0       bounce
defer     unix  -       -       n       -       0       bounce
trace     unix  -       -       n       -       0       bounce
verify    unix  -       -       n       -       1       verify
flush     unix  n       -       n       1000?   0       flush
proxymap  unix  -       -       n       -       -       proxymap
proxywrite unix -       -       n       -       1       proxymap
smtp      unix  -       -       n       -       -       smtp
relay     unix  -       -       n       -       -       smtp
showq     unix  n       -       n       -       -       showq
error     unix  -       -       n       -       -       error
retry     unix  -       -       n       -       -       error
discard   unix  -       -       n       -       -       discard
local     unix  -       n       n       -       -       local
virtual   unix  -       n       n       -       -       virtual
lmtp      unix  -       -       n       -       -       lmtp
anvil     unix  -       -       n       -       1       anvil
scache    unix  -       -       n       -       1       scache
postlog   unix-dgram n  -       n       -       1       postlogd
"""


def free_port():
    """A loopback TCP port nobody listens on right now (as conftest's)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _read_secret(path):
    return pathlib.Path(path).read_text().strip()


def ensure_reachable(path, user="postfix", socket_mode=0o666):
    """Lets USER reach PATH: adds o+x to every ancestor directory USER could
    not search, and for a socket sets SOCKET_MODE (connect() needs write
    permission on the socket file). Only search bits are added, never read,
    and only below the temp directory."""
    path = pathlib.Path(path).resolve()
    pw = pwd.getpwnam(user)
    tmp = pathlib.Path(tempfile.gettempdir()).resolve()
    for d in reversed(path.parents):
        st = d.stat()
        if st.st_uid == pw.pw_uid or st.st_mode & stat.S_IXOTH:
            continue
        # Only our own scratch directories are loosened, never e.g. /root.
        if tmp not in d.parents:
            raise PermissionError(f"{user} cannot traverse {d} (mode {stat.S_IMODE(st.st_mode):o}); "
                                  f"put the lab under {tmp} or add o+x yourself")
        os.chmod(d, stat.S_IMODE(st.st_mode) | stat.S_IXOTH)
    if path.exists() and stat.S_ISSOCK(path.stat().st_mode):
        os.chmod(path, socket_mode)


class PostfixLab:
    """One private Postfix instance. LAB is conftest's Lab (needs .dir and
    .mysql_socket). PORT defaults to a free loopback port."""

    def __init__(self, root, lab, lmtp_socket, port=None, extra_main=None,
                 mynetworks="192.0.2.1/32"):
        self.root = pathlib.Path(root).resolve()
        self.lab = lab
        self.lmtp_socket = pathlib.Path(lmtp_socket).resolve()
        self.port = port or free_port()
        self.extra_main = dict(extra_main or {})
        self.mynetworks = mynetworks
        self.config_dir = self.root / "etc"
        self.queue_dir = self.root / "spool"
        self.data_dir = self.root / "data"
        self.maillog_path = self.root / "maillog"
        self.started = False

    # -- configuration ----------------------------------------------------

    def _main_cf(self):
        maps = {name: f"mysql:{self.config_dir / name}" for name in QUERIES}
        params = {
            "compatibility_level": "3.6",
            "queue_directory": str(self.queue_dir),
            "data_directory": str(self.data_dir),
            "mail_owner": "postfix",
            "setgid_group": "postdrop",
            "maillog_file": str(self.maillog_path),
            "maillog_file_prefixes": str(self.root),
            "myhostname": "mx.lab.test",
            "mydomain": "lab.test",
            "myorigin": "$myhostname",
            "mydestination": "",
            "inet_interfaces": "127.0.0.1",
            "inet_protocols": "ipv4",
            # Loopback is NOT trusted: relay rules apply to the test client.
            "mynetworks": self.mynetworks,
            "smtpd_relay_restrictions": "permit_mynetworks, reject_unauth_destination",
            "smtpd_recipient_restrictions": "permit_mynetworks, reject_unauth_destination",
            "smtpd_peername_lookup": "no",
            "smtp_dns_support_level": "disabled",
            "alias_maps": "",
            "alias_database": "",
            "local_recipient_maps": "",
            "biff": "no",
            "append_dot_mydomain": "no",
            "smtpd_banner": "$myhostname ESMTP postfix-lab",
            "virtual_mailbox_domains": maps["mysql-virtual-mailbox-domains.cf"],
            "virtual_mailbox_maps": maps["mysql-virtual-mailbox-maps.cf"],
            "virtual_alias_maps": maps["mysql-virtual-alias-maps.cf"],
            "virtual_transport": f"lmtp:unix:{self.lmtp_socket}",
            # Retry deferred mail quickly so a test sees recovery within
            # seconds (defaults: 300s / 4000s).
            "queue_run_delay": "1s",
            "minimal_backoff_time": "1s",
            "maximal_backoff_time": "2s",
            "lmtp_connect_timeout": "5s",
            "delay_warning_time": "0h",
        }
        params.update(self.extra_main)
        return "".join(f"{k} = {v}\n" for k, v in params.items())

    def _map_cf(self, query):
        password = _read_secret(self.lab.dir / "secrets" / "lookup")
        # Postfix's mysql client: "unix:/path" selects the socket.
        return (f"hosts = unix:{self.lab.mysql_socket}\n"
                f"user = sockmail_lookup\n"
                f"password = {password}\n"
                f"dbname = mailserver\n"
                f"query = {query}\n")

    def write_config(self):
        # postfix chdir()s to the queue directory before set-permissions
        # can create it: make it (root-owned, like /var/spool/postfix).
        for d in (self.root, self.config_dir, self.queue_dir):
            d.mkdir(parents=True, exist_ok=True)
            os.chmod(d, 0o755)
        (self.config_dir / "main.cf").write_text(self._main_cf())
        (self.config_dir / "master.cf").write_text(
            MASTER_CF.format(listen=f"127.0.0.1:{self.port}"))
        gid = grp.getgrnam("postfix").gr_gid
        for name, query in QUERIES.items():
            p = self.config_dir / name
            p.write_text(self._map_cf(query))
            # Holds the lookup password: readable by root and postfix only.
            os.chown(p, 0, gid)
            os.chmod(p, 0o640)

    # -- running ----------------------------------------------------------

    def _postfix(self, *args, check=True, timeout=60):
        return subprocess.run([POSTFIX, "-c", str(self.config_dir), *args],
                              capture_output=True, text=True, check=check,
                              timeout=timeout)

    def start(self):
        self.write_config()
        # The daemons (running as postfix) connect to the DB socket.
        ensure_reachable(self.lab.mysql_socket)
        if self.lmtp_socket.exists():
            ensure_reachable(self.lmtp_socket)
        else:
            ensure_reachable(self.lmtp_socket.parent)
        # `postfix start` runs postfix-script check-fatal, which creates the
        # queue/data subdirectories with Postfix's owners and modes
        # (post-install create-missing) and then `check-warn`: a separate
        # set-permissions/check beforehand only costs ~7 s on a slow machine.
        r = self._postfix("start", check=False)
        if r.returncode != 0:
            chk = self._postfix("check", check=False)
            raise RuntimeError(f"postfix start failed:\n{r.stdout}{r.stderr}\n"
                               f"postfix check:\n{chk.stdout}{chk.stderr}\n{self.maillog()}")
        self.started = True
        self._wait_listening()
        return self

    def _wait_listening(self, timeout=15.0):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1) as s:
                    s.settimeout(5)
                    if s.recv(512).startswith(b"220"):
                        return
            except OSError:
                pass
            time.sleep(0.05)
        raise TimeoutError(f"postfix smtpd not answering on port {self.port}\n{self.maillog()}")

    def stop(self):
        if not self.started:
            return
        self.started = False
        self._postfix("stop", check=False)
        # `postfix stop` returns before master has exited; wait for its pid
        # file lock to go so the directory can be removed.
        pidfile = self.queue_dir / "pid" / "master.pid"
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                pid = int(pidfile.read_text().split()[0])
                os.kill(pid, 0)
            except (OSError, ValueError, IndexError):
                return
            time.sleep(0.05)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    # -- inspection -------------------------------------------------------

    def queue(self):
        """postqueue -p output ("Mail queue is empty" when empty)."""
        return subprocess.run([POSTQUEUE, "-c", str(self.config_dir), "-p"],
                              capture_output=True, text=True, timeout=30).stdout

    def flush(self):
        subprocess.run([POSTQUEUE, "-c", str(self.config_dir), "-f"],
                       capture_output=True, timeout=30)

    def wait_queue_empty(self, timeout=20.0):
        """Waits until the queue is empty; raises with queue and log if not."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            q = self.queue()
            if "Mail queue is empty" in q:
                return
            time.sleep(0.1)
        raise TimeoutError(f"queue not empty after {timeout}s:\n{self.queue()}\n"
                           f"--- maillog ---\n{self.maillog()}")

    def maillog(self):
        try:
            return self.maillog_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def postmap_query(self, key, mapname):
        """`postmap -q KEY mysql:...` as in the tutorial's checks; None = not found."""
        r = subprocess.run([POSTMAP, "-c", str(self.config_dir), "-q", key,
                            f"mysql:{self.config_dir / mapname}"],
                           capture_output=True, text=True, timeout=30)
        if r.returncode == 1:
            return None
        if r.returncode != 0:
            raise RuntimeError(f"postmap failed: {r.stderr}")
        return r.stdout.strip()
