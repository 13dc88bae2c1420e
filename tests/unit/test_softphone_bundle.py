"""The softphone's JavaScript: JsSIP pinned exactly (package.json and the lock agree), and the
committed bundle is built from that version and loads nothing from elsewhere."""

import json
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SRC = ROOT / "desk" / "web" / "softphone"
BUNDLE = ROOT / "desk" / "web" / "static" / "softphone.js"


def test_versions_are_pinned_and_locked() -> None:
    package = json.loads((SRC / "package.json").read_text())
    lock = json.loads((SRC / "package-lock.json").read_text())
    for table in ("dependencies", "devDependencies"):
        for name, version in package[table].items():
            assert re.fullmatch(r"\d+\.\d+\.\d+", version), f"{name} {version}: pin exactly"
            locked = lock["packages"][f"node_modules/{name}"]
            assert locked["version"] == version
            # npm leaves `resolved` out for the default registry; anything else would show here.
            assert locked.get("resolved", "https://registry.npmjs.org/").startswith(
                "https://registry.npmjs.org/"
            )
            assert locked["integrity"].startswith("sha512-")


def test_the_committed_bundle_is_the_pinned_jssip_and_loads_nothing_else() -> None:
    version = json.loads((SRC / "package.json").read_text())["dependencies"]["jssip"]
    text = BUNDLE.read_text()
    assert f'version:"{version}"' in text
    assert "__softphone" in text  # our code, not only the library
    # No script, module or stylesheet is fetched from another site at run time.
    assert not re.search(r"import\(|importScripts|\.src\s*=\s*[\"']https?:", text)
