"""./demo as a user runs it: it starts every listener on its own lab, the
listeners serve mail, SIGTERM stops everything it started, and a second
./demo finds the mail again. Ports are moved to free ones (the variables the
demo documents), and the demo reuses the tests' build directory."""
import os
import poplib
import signal
import smtplib
import subprocess
import time

from conftest import ROOT, free_port, wait_port


def start_demo(state, build, ports):
    env = dict(os.environ, SOCKMAIL_DEMO_DIR=str(state), SOCKMAIL_DEMO_BUILD=str(build),
               **{f"SOCKMAIL_DEMO_{k}_PORT": str(v) for k, v in ports.items()})
    proc = subprocess.Popen([str(ROOT / "demo")], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, start_new_session=True)
    lines = []
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        lines.append(line)
        if "Press Ctrl-C" in line:
            return proc, "".join(lines)
    proc.kill()
    raise AssertionError("demo did not start:\n" + "".join(lines))


def stop_demo(proc):
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=60)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        raise


def test_demo_serves_stops_and_keeps_mail(build, tmp_path):
    state = tmp_path / "demo-data"
    ports = {k: free_port() for k in ("LMTP", "SMTP", "SUBMISSION", "SMTPS", "POP3", "POP3S")}
    proc, out = start_demo(state, build, ports)
    try:
        for p in ports.values():
            assert f"127.0.0.1:{p}" in out
        assert "alice@example.com (alice-secret)" in out
        with smtplib.SMTP("127.0.0.1", ports["SMTP"], timeout=30) as s:
            s.sendmail("someone@example.org", ["bob@example.com"], "Subject: demo\r\n\r\nkept\r\n")
        with smtplib.SMTP("127.0.0.1", ports["SUBMISSION"], timeout=30) as s:
            s.starttls()
            s.login("alice@example.com", "alice-secret")
            s.sendmail("alice@example.com", ["bob@example.com"], "Subject: sub\r\n\r\nsubmitted\r\n")
        p = poplib.POP3("127.0.0.1", ports["POP3"], timeout=30)
        p.stls()
        p.user("bob@example.com")
        p.pass_("bob-secret")
        assert p.stat()[0] == 2
        p.quit()
    finally:
        stop_demo(proc)

    # Everything it started is gone: the ports are free, its database stopped.
    for port in ports.values():
        r = subprocess.run(["ss", "-Hltn", f"sport = :{port}"], capture_output=True, text=True)
        assert r.stdout.strip() == "", f"port {port} still listened on"
    assert subprocess.run(["pgrep", "-f", f"datadir={state}/data"]).returncode == 1

    # A second ./demo finds the same mail.
    proc, _ = start_demo(state, build, ports)
    try:
        wait_port(ports["POP3S"])
        p = poplib.POP3_SSL("127.0.0.1", ports["POP3S"], timeout=30,
                            context=__import__("ssl")._create_unverified_context())
        p.user("bob@example.com")
        p.pass_("bob-secret")
        assert p.stat()[0] == 2
        p.quit()
    finally:
        stop_demo(proc)
