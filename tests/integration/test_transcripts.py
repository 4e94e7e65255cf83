"""Golden transcripts: feed tests/transcripts/NAME.in to a handler on
stdin/stdout and compare its replies with NAME.ref (STYLE.md point 9).
Regenerate a .ref after a deliberate change with SOCKMAIL_REGEN=1."""
import os
import pathlib
import subprocess

import pytest

DIR = pathlib.Path(__file__).resolve().parents[1] / "transcripts"
HANDLERS = {"lmtp": "handlers/lmtp-handler/lmtp-handler"}


@pytest.mark.parametrize("name", sorted(p.stem for p in DIR.glob("*.in")))
def test_transcript(name, lab, build):
    exe = build / HANDLERS[name.split("-")[0]]
    src = (DIR / f"{name}.in").read_bytes()
    out = subprocess.run([exe, "-c", lab.config], input=src, capture_output=True, timeout=30).stdout
    ref = DIR / f"{name}.ref"
    if os.environ.get("SOCKMAIL_REGEN"):
        ref.write_bytes(out)
    assert out.decode() == ref.read_bytes().decode()
