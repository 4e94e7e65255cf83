"""Golden transcripts: feed tests/transcripts/NAME.in to a handler on
stdin/stdout and compare its replies with NAME.ref (STYLE.md point 9).
Regenerate a .ref after a deliberate change with SOCKMAIL_REGEN=1."""
import os
import pathlib
import re
import subprocess

import pytest

DIR = pathlib.Path(__file__).resolve().parents[1] / "transcripts"
HANDLERS = {"lmtp": "handlers/lmtp-handler/lmtp-handler",
            "smtp": "handlers/smtp-handler/smtp-handler"}


@pytest.mark.parametrize("name", sorted(p.stem for p in DIR.glob("*.in")))
def test_transcript(name, lab, build):
    exe = build / HANDLERS[name.split("-")[0]]
    src = (DIR / f"{name}.in").read_bytes()
    # A first line "# args: ..." gives extra arguments (smtp's --mode).
    args = []
    if src.startswith(b"# args:"):
        first, src = src.split(b"\n", 1)
        args = first[len(b"# args:"):].decode().split()
    out = subprocess.run([exe, "-c", lab.config, *args], input=src, capture_output=True, timeout=30).stdout
    # Queue ids are unique by design: compare them as a placeholder.
    out = re.sub(rb"queued as [0-9a-f.]+", b"queued as ID", out)
    ref = DIR / f"{name}.ref"
    if os.environ.get("SOCKMAIL_REGEN"):
        ref.write_bytes(out)
    assert out.decode() == ref.read_bytes().decode()
