"""Process-wide panoramisk state our code must not disturb."""

import subprocess
import sys


def run(code: str) -> str:
    return subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout.strip()


def test_our_ami_package_keeps_crlf_line_endings() -> None:
    out = run("import cti.ami.client, cti.ami.protocol as p; print(repr(p.eol()))")
    assert out == repr("\r\n")


def test_panoramisk_testing_would_change_them() -> None:
    # The reason we never import panoramisk.testing next to a real manager.
    out = run(
        "import asyncio, panoramisk.testing as t, panoramisk.utils as u\n"
        "asyncio.set_event_loop(asyncio.new_event_loop())\n"
        "t.Manager()\n"
        "print(repr(u.EOL))"
    )
    assert out != repr("\r\n")
