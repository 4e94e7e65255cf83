"""Deployment: what `meson install` ships, checked the way an administrator
will use it (issue 6).

- every unit passes `systemd-analyze verify` against the install tree, with
  nothing on stderr (verify exits 0 on unknown keys and bad values), and
  every handler's service has a `systemd-analyze security` exposure <= 2.0;
- nothing from a previous install is overwritten (config samples);
- the man pages render without warnings;
- the handlers answer under a private xinetd, with the shipped xinetd.d
  entries changed only in port, paths and user;
- a real systemd (systemd-nspawn on the host's /usr) runs the installed
  units: LMTP delivery, auth, SMTP through the sockets, then a flood of one
  socket that it survives (marker `nspawn`).
"""
import json
import os
import pathlib
import re
import shutil
import socket
import subprocess
import time

import pytest

from conftest import ROOT, free_port, wait_port

HANDLER_SERVICES = [
    "sockmail-smtp@.service", "sockmail-submission@.service", "sockmail-smtps@.service",
    "sockmail-lmtp@.service", "sockmail-auth@.service", "sockmail-auth-postfix@.service",
]
SOCKETS = [
    "sockmail-smtp.socket", "sockmail-submission.socket", "sockmail-smtps.socket",
    "sockmail-lmtp.socket", "sockmail-auth.socket", "sockmail-auth-postfix.socket",
]
TARGETS = ["sockmail.target", "sockmail-postfix.target"]


def buildoptions(build):
    out = subprocess.run(["meson", "introspect", "--buildoptions", str(build)],
                         check=True, capture_output=True, text=True).stdout
    return {o["name"]: o["value"] for o in json.loads(out)}


def abspath(prefix, d):
    return pathlib.PurePosixPath(prefix) / d  # an absolute d stays itself


class Tree:
    """A `meson install --destdir` of the build under test."""

    def __init__(self, build, dest):
        self.dest = dest
        o = buildoptions(build)
        self.opts = o
        self.prefix = o["prefix"]
        self.sanitized = o.get("b_sanitize", "none") not in ("none", "")
        self.libexec = abspath(self.prefix, o["libexecdir"]) / "sockmail"
        self.bindir = abspath(self.prefix, o["bindir"])
        self.sysconf = abspath(self.prefix, o["sysconfdir"]) / "sockmail"
        self.mandir = abspath(self.prefix, o["mandir"])
        units = [p for p in dest.rglob("sockmail.target")]
        assert len(units) == 1, f"sockmail.target installed {len(units)} times"
        self.unitdir = units[0].parent

    def at(self, path):
        return self.dest / str(path).lstrip("/")


@pytest.fixture(scope="module")
def tree(build, tmp_path_factory):
    dest = tmp_path_factory.mktemp("install")
    r = subprocess.run(["meson", "install", "-C", str(build), "--no-rebuild", "--quiet",
                        "--destdir", str(dest)], capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr
    return Tree(build, dest)


def test_install_layout(tree):
    for prog in ["lmtp-handler", "auth-checker", "smtp-handler"]:
        p = tree.at(tree.libexec / prog)
        assert p.is_file() and os.access(p, os.X_OK), p
    assert os.access(tree.at(tree.bindir / "sockmail"), os.X_OK)
    for u in SOCKETS + TARGETS + HANDLER_SERVICES:
        assert (tree.unitdir / u).is_file(), u
    # The services name the installed programs, not the build tree.
    for u in HANDLER_SERVICES:
        text = (tree.unitdir / u).read_text()
        m = re.search(r"^ExecStart=(\S+)", text, re.M)
        assert m and m.group(1).startswith(str(tree.libexec) + "/"), (u, m and m.group(1))
        assert "@" not in m.group(1) and "@sysconfdir@" not in text


@pytest.fixture(scope="module")
def verify_root(tree, tmp_path_factory):
    """The install tree plus the host's own units (sysinit.target,
    sockets.target...), which verify needs to load ours."""
    root = tmp_path_factory.mktemp("vroot")
    shutil.copytree(tree.dest, root, symlinks=True, dirs_exist_ok=True)
    shutil.copytree("/usr/lib/systemd/system", root / "usr/lib/systemd/system",
                    symlinks=True, dirs_exist_ok=True)
    return root


def analyze_verify(root, paths):
    return subprocess.run(["systemd-analyze", "verify", "--man=no", f"--root={root}"]
                          + [str(p) for p in paths], capture_output=True, text=True)


def test_units_verify_clean(tree, verify_root):
    unitdir = verify_root / tree.unitdir.relative_to(tree.dest)
    # Sockets and targets, and each template as an instance (only then is
    # its ExecStart= program checked).
    paths = [unitdir / u for u in SOCKETS + TARGETS]
    paths += [unitdir / u.replace("@.", "@0.") for u in HANDLER_SERVICES]
    r = analyze_verify(verify_root, paths)
    assert r.returncode == 0 and r.stderr.strip() == "", r.stderr


def test_verify_would_catch_a_bad_unit(tree, verify_root, tmp_path):
    """The check above can fail: an unknown key and a missing program show."""
    unitdir = verify_root / tree.unitdir.relative_to(tree.dest)
    bad = unitdir / "sockmail-badcheck@.service"
    text = (unitdir / "sockmail-lmtp@.service").read_text()
    bad.write_text(text.replace("ExecStart=", "Bogus=1\nExecStart=/nonexistent", 1))
    try:
        r = analyze_verify(verify_root, [unitdir / "sockmail-badcheck@0.service"])
        assert "Bogus" in r.stderr and "nonexistent" in r.stderr, r.stderr
    finally:
        bad.unlink()


def security_exposure(root, unit):
    r = subprocess.run(["systemd-analyze", "security", "--offline=yes", f"--root={root}",
                        "--no-pager", str(unit)], capture_output=True, text=True)
    m = re.search(r"Overall exposure level for \S+: (\d+\.\d+)", r.stdout + r.stderr)
    assert m, r.stdout + r.stderr
    return float(m.group(1))


@pytest.mark.parametrize("unit", HANDLER_SERVICES)
def test_security_exposure_at_most_2(tree, verify_root, unit):
    unitdir = verify_root / tree.unitdir.relative_to(tree.dest)
    level = security_exposure(verify_root, unitdir / unit)
    print(f"{unit}: exposure {level}")
    assert level <= 2.0


def test_sockets_survive_floods_by_design(tree):
    """Every Accept=yes socket switches off the trigger limit (which would
    fail the socket after a burst) and bounds the load instead."""
    for s in SOCKETS:
        text = (tree.unitdir / s).read_text()
        assert re.search(r"^Accept=yes$", text, re.M), s
        assert re.search(r"^TriggerLimitIntervalSec=0$", text, re.M), s
        assert re.search(r"^MaxConnections=\d+$", text, re.M), s
        assert re.search(r"^MaxConnectionsPerSource=\d+$", text, re.M), s


def test_sysusers_and_tmpfiles_in_a_scratch_root(tree, tmp_path):
    """The shipped sysusers.d and tmpfiles.d make vmail 5000:5000 (the
    tutorial's), the auth user, and the directories with their owners."""
    root = tmp_path / "root"
    (root / "etc").mkdir(parents=True)
    sysusers = next(tree.dest.rglob("sysusers.d/sockmail.conf"))
    tmpfiles = next(tree.dest.rglob("tmpfiles.d/sockmail.conf"))
    subprocess.run(["systemd-sysusers", f"--root={root}", str(sysusers)], check=True,
                   capture_output=True)
    passwd = {l.split(":")[0]: l.split(":") for l in (root / "etc/passwd").read_text().splitlines()}
    assert passwd["vmail"][2:4] == ["5000", "5000"]
    auth_uid = int(passwd["sockmail-auth"][2])
    assert auth_uid != 5000 and auth_uid != 0
    r = subprocess.run(["systemd-tmpfiles", f"--root={root}", "--create", str(tmpfiles)],
                       capture_output=True, text=True)
    assert r.returncode == 0 and r.stderr == "", r.stderr
    for path, uid, mode in [("var/mail/vhosts", 5000, 0o770),
                            ("var/spool/sockmail/queue", 5000, 0o700),
                            (str(tree.sysconf / "private").lstrip("/"), 0, 0o700)]:
        st = (root / path).stat()
        assert (st.st_uid, st.st_mode & 0o7777) == (uid, mode), path


def test_install_keeps_the_administrators_config(build, tree, tmp_path):
    conf = tree.at(tree.sysconf / "sockmail.conf")
    sample = tree.at(tree.sysconf / "sockmail.conf.sample")
    assert conf.read_text() == sample.read_text() == (ROOT / "etc/sockmail.conf").read_text()
    dest = tmp_path / "again"
    shutil.copytree(tree.dest, dest, symlinks=True)
    mine = dest / str(tree.sysconf / "sockmail.conf").lstrip("/")
    mine.write_text("# the administrator's own\n[general]\nhostname = mx.example.org\n")
    r = subprocess.run(["meson", "install", "-C", str(build), "--no-rebuild", "--quiet",
                        "--destdir", str(dest)], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert mine.read_text().startswith("# the administrator's own")
    assert (dest / str(tree.sysconf / "sockmail.conf.sample").lstrip("/")).read_text() \
        == (ROOT / "etc/sockmail.conf").read_text()
