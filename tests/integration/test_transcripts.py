"""Golden transcripts: feed tests/transcripts/NAME.in to a handler on
stdin/stdout and compare its replies with NAME.ref (STYLE.md point 9).
Regenerate a .ref after a deliberate change with SOCKMAIL_REGEN=1.

pop3-* transcripts log in, so they run with a private config: a real
auth-checker on a socket of their own (failure_delay 0, plaintext allowed
since a pipe is not TLS) and a fresh Maildir for alice holding MSGS."""
import os
import pathlib
import re
import subprocess

import pytest

DIR = pathlib.Path(__file__).resolve().parents[1] / "transcripts"
HANDLERS = {"lmtp": "handlers/lmtp-handler/lmtp-handler",
            "smtp": "handlers/smtp-handler/smtp-handler",
            "pop3": "handlers/pop3-handler/pop3-handler"}

# Alice's mailbox for pop3-*: bare LF, a dotted line, no final newline.
MSGS = [b"From: a@example.com\nSubject: one\n\nline 1\n.dotted\nlast\n",
        b"Subject: two\r\n\r\nalready CRLF\r\n",
        b"Subject: three\n\nno final newline"]


def pop3_config(lab, build, activate, tmp_path):
    sock = tmp_path / "auth.sock"
    mail = tmp_path / "mail"
    conf = tmp_path / "pop3.conf"
    text = re.sub(r"(?m)^mail_location = .*$", f"mail_location = {mail}/%d/%n",
                  lab.config.read_text())
    text += (f"[auth]\nsocket = {sock}\nfailure_delay = 0\nallow_plaintext = yes\n"
             "max_attempts = 3\n[pop3]\nmax_bad_commands = 50\n")
    conf.write_text(text)
    md = mail / "example.com" / "alice"
    for sub in ("new", "cur", "tmp"):
        (md / sub).mkdir(parents=True)
    for i, m in enumerate(MSGS):
        (md / "new" / f"{1700000000 + i}.M{i}P1.lab,S={len(m)}").write_bytes(m)
    activate([build / "handlers/auth-checker/auth-checker", "-c", conf], unix=sock)
    return conf


@pytest.mark.parametrize("name", sorted(p.stem for p in DIR.glob("*.in")))
def test_transcript(name, lab, build, activate, tmp_path):
    kind = name.split("-")[0]
    exe = build / HANDLERS[kind]
    src = (DIR / f"{name}.in").read_bytes()
    # A first line "# args: ..." gives extra arguments (smtp's --mode).
    args = []
    if src.startswith(b"# args:"):
        first, src = src.split(b"\n", 1)
        args = first[len(b"# args:"):].decode().split()
    conf = pop3_config(lab, build, activate, tmp_path) if kind == "pop3" else lab.config
    out = subprocess.run([exe, "-c", conf, *args], input=src, capture_output=True, timeout=30).stdout
    # Queue ids are unique by design: compare them as a placeholder.
    out = re.sub(rb"queued as [0-9a-f.]+", b"queued as ID", out)
    # POP3 UIDLs end in the mailbox's UIDVALIDITY (its creation time).
    out = re.sub(rb"(?m)^((?:\+OK )?\d+ [0-9a-f]{8})[0-9a-f]{8}\r$", rb"\1VVVVVVVV\r", out)
    ref = DIR / f"{name}.ref"
    if os.environ.get("SOCKMAIL_REGEN"):
        ref.write_bytes(out)
    assert out.decode() == ref.read_bytes().decode()
