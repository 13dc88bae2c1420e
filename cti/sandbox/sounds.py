"""An instance's own sound folder, so that its IVR prompts can be short stand-ins.

The synthesised prompts run for seconds each (the Mandarin main menu for 16 s, each spoken digit
for 0.7 s), and a test call that hears them all waits minutes in real time for nothing it looks
at. An instance started with short prompts gets an Asterisk data folder of its own
(`astdatadir`): links to everything in the root's /usr/share/asterisk, except that the prompt
catalogue (`sounds/<lang>/cti`) and the Mandarin digits (`sounds/zh/digits`) point at short
tones with the same names. `use()` turns the links to the real recordings and back while Asterisk
runs: Asterisk opens a sound file by its path each time it plays one.
"""

import io
import math
import os
import struct
import subprocess
import wave
from pathlib import Path

from cti.errors import SandboxError
from cti.sandbox.root import chroot_prefix

KINDS = ("full", "short")
# (language, folder) pairs that are swapped: the catalogue in each language, Mandarin digits
# (English ones are Asterisk's own recordings).
SWAPPED = (("zh", "cti"), ("en", "cti"), ("zh", "digits"))
# Long enough that a simulated caller's key (sent 0.3 s after the prompt starts) still lands
# while the prompt plays, as it does with the real recordings: a key that arrives between two
# AGI commands is dropped by Asterisk.
SHORT_SECONDS = {"cti": 1.2, "digits": 0.2}
STOCK = "/usr/share/asterisk"
RATE = 8000


def tone(seconds: float) -> bytes:
    """A quiet 440 Hz tone as an 8 kHz mono 16-bit WAV file (what Asterisk plays as is)."""
    n = int(RATE * seconds)
    ramp = RATE // 50  # 20 ms in and out, no click
    frames = bytearray()
    for i in range(n):
        gain = min(1.0, i / ramp, (n - i) / ramp)
        frames += struct.pack("<h", int(2000 * gain * math.sin(2 * math.pi * 440 * i / RATE)))
    buf = io.BytesIO()
    with wave.open(buf, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(RATE)
        w.writeframes(bytes(frames))
    return buf.getvalue()


class SoundFolder:
    """The data folder of one instance: `host` as this host sees it, `inner` inside the root."""

    def __init__(self, root: Path, host: Path, inner: Path) -> None:
        self.root = root
        self.host = host
        self.inner = inner

    @property
    def data_inner(self) -> str:
        """What the instance's asterisk.conf gives as astdatadir."""
        return str(self.inner / "data")

    def build(self) -> None:
        """Link the root's data folder into ours and write the short stand-ins of every prompt
        the root has (run after the catalogue is synthesised)."""
        data = self.inner / "data"
        langs = " ".join(sorted({lang for lang, _ in SWAPPED}))
        # Inside the root, where its own absolute links (sounds/en -> /etc/alternatives/...)
        # resolve; it prints the prompt files there are, for the stand-ins.
        script = f"""set -e
D={data}
rm -rf "$D"; mkdir -p "$D/sounds"
for e in {STOCK}/*; do [ "${{e##*/}}" = sounds ] || ln -s "$e" "$D/"; done
for e in {STOCK}/sounds/*; do
  n=${{e##*/}}
  case " {langs} " in
    *" $n "*) mkdir "$D/sounds/$n"; ln -s "$e"/* "$D/sounds/$n/";;
    *) ln -s "$e" "$D/sounds/$n";;
  esac
done
for p in {" ".join(f"{lang}/{sub}" for lang, sub in SWAPPED)}; do
  for f in {STOCK}/sounds/$p/*.wav; do [ -e "$f" ] && echo "$p/${{f##*/}}"; done
done
true
"""
        proc = subprocess.run(
            [*chroot_prefix(self.root), "sh", "-c", script],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        if proc.returncode != 0:
            raise SandboxError(f"could not make the instance's sound folder: {proc.stderr[-500:]}")
        audio = {sub: tone(seconds) for sub, seconds in SHORT_SECONDS.items()}
        for rel in proc.stdout.split():
            lang, sub, name = rel.split("/", 2)
            dest = self.host / "short" / lang / sub / name
            dest.parent.mkdir(parents=True, exist_ok=True)
            dest.write_bytes(audio[sub])
        for lang, sub in SWAPPED:
            (self.host / "short" / lang / sub).mkdir(parents=True, exist_ok=True)

    def use(self, kind: str) -> None:
        """Play the real prompts ("full") or the short stand-ins ("short") from now on."""
        if kind not in KINDS:
            raise SandboxError(f"prompts must be one of {', '.join(KINDS)}, not {kind!r}")
        for lang, sub in SWAPPED:
            link = self.host / "data" / "sounds" / lang / sub
            if not link.parent.is_dir():
                raise SandboxError(f"{link.parent} is missing: the sound folder was not built")
            short = f"{self.inner}/short/{lang}/{sub}"
            target = f"{STOCK}/sounds/{lang}/{sub}" if kind == "full" else short
            tmp = link.with_name(f".{sub}.new")
            tmp.unlink(missing_ok=True)
            os.symlink(target, tmp)
            os.replace(tmp, link)

    def in_use(self) -> str | None:
        """Which prompts the instance plays now (None: the folder is not built)."""
        try:
            target = os.readlink(self.host / "data" / "sounds" / "zh" / "cti")
        except OSError:
            return None
        return "short" if target.startswith(f"{self.inner}/") else "full"
