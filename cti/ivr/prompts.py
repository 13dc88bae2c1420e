"""The prompt catalogue (name -> text per language) and placeholder audio made from it.

No public Mandarin Asterisk sound pack exists, so every prompt is synthesised with espeak-ng
(`-v cmn` for Mandarin; Debian sid's 1.52 reads Chinese correctly where Debian 12's does not, so
in the sandbox it runs inside the sid root) and converted by sox to 8 kHz mono 16-bit WAV. A
recorded file with the same name replaces the placeholder. Mandarin `SAY DIGITS` needs
`digits/0..9` in `sounds/zh/`; they are made the same way.
"""

import contextlib
import hashlib
import json
import logging
import os
import shutil
import signal
import subprocess
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from cti.errors import ConfigError, CtiError
from cti.ivr.yamlconf import load

logger = logging.getLogger(__name__)

LANGUAGES = ("zh", "en")
VOICES = {"zh": "cmn", "en": "en-us"}
ZH_DIGITS = dict(zip("0123456789", "零一二三四五六七八九", strict=True))
SUBDIR = "cti"
SOX_8K = ("-r", "8000", "-c", "1", "-b", "16")  # what Asterisk plays without transcoding


@dataclass(frozen=True)
class PromptCatalogue:
    """Prompt texts by name and language."""

    texts: dict[str, dict[str, str]]

    def names(self) -> set[str]:
        """All prompt names."""
        return set(self.texts)

    def file(self, name: str, language: str) -> str:
        """The STREAM FILE name for `name`, in `language` if the catalogue has it.

        Asterisk looks in sounds/<channel language>/ first and then in sounds/, so a prompt that
        exists only in the other language is named with its language folder.
        """
        langs = self.texts[name]
        if language in langs:
            return f"{SUBDIR}/{name}"
        other = next(iter(langs))
        return f"{other}/{SUBDIR}/{name}"

    def digest(self) -> str:
        """A hash of the catalogue (rebuild audio when it changes)."""
        blob = json.dumps(self.texts, sort_keys=True, ensure_ascii=False).encode()
        return hashlib.sha256(blob).hexdigest()[:16]


def load_prompts(path: Path) -> PromptCatalogue:
    """Load and validate prompts.yaml."""
    root = load(path)
    texts: dict[str, dict[str, str]] = {}
    for name, node in root.mapping().items():
        if not name.replace("_", "").isalnum():
            raise node.error(f"prompt name {name!r}: letters, digits and _ only")
        langs = node.mapping()
        if not langs:
            raise node.error(f"prompt {name!r} has no text")
        for lang, text in langs.items():
            if lang not in LANGUAGES:
                raise text.error(f"language {lang!r} is not one of {', '.join(LANGUAGES)}")
            if not text.scalar().strip():
                raise text.error(f"prompt {name!r} ({lang}) is empty")
        texts[name] = {lang: t.scalar().strip() for lang, t in langs.items()}
    return PromptCatalogue(texts)


class Synthesizer:
    """Text to an 8 kHz WAV file with espeak-ng and sox, on this host or inside a root.

    The text is data: it reaches espeak-ng on its standard input (`--stdin`), never as an
    argument, where "-f FILE" would have read a file aloud and "-w FILE" left espeak-ng reading
    the server's own standard input forever. Every step runs under the `timeout` of its
    synthesis and is killed (with anything it started) when that runs out.
    """

    def __init__(
        self, root: Path | None = None, prefix: list[str] | None = None, *, timeout: float = 60.0
    ) -> None:
        self.root = root
        self.prefix = prefix or []
        self.timeout = timeout
        if root is None and not (shutil.which("espeak-ng") and shutil.which("sox")):
            raise CtiError("text-to-speech needs espeak-ng and sox on this host")

    def _inner(self, path: Path) -> str:
        # Lexically: the root holds absolute symlinks (sounds/en -> /etc/alternatives/...) that
        # only make sense inside it, so nothing here may resolve them on the host.
        if self.root is None:
            return str(path)
        return "/" + str(path.relative_to(self.root))

    def _run(
        self, cmd: list[str], what: str, *, stdin: bytes = b"", deadline: float | None = None
    ) -> None:
        if deadline is None:
            deadline = time.monotonic() + self.timeout
        left = deadline - time.monotonic()
        if left <= 0:
            raise CtiError(f"{cmd[0]} for {what}: no time left (limit {self.timeout:g} s)")
        # A session of its own, so that the kill reaches chroot's or unshare's child too.
        proc = subprocess.Popen(
            [*self.prefix, *cmd],
            stdin=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            start_new_session=True,
        )
        try:
            _, err = proc.communicate(stdin, timeout=left)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.communicate()
            raise CtiError(
                f"{cmd[0]} for {what} took longer than {self.timeout:g} s: stopped"
            ) from None
        if proc.returncode != 0:
            message = err.decode("utf-8", "replace").strip()[:300]
            raise CtiError(f"{cmd[0]} failed for {what}: {message}")

    def _mkdir(self, folder: Path) -> None:
        if self.root is None:
            folder.mkdir(parents=True, exist_ok=True)
        else:
            self._run(["mkdir", "-p", self._inner(folder)], str(folder))

    def synth(self, text: str, language: str, dest: Path) -> None:
        """Write `text` spoken in `language` to `dest` (a .wav path), within `timeout` seconds."""
        deadline = time.monotonic() + self.timeout
        self._mkdir(dest.parent)
        tmp_dir = Path(tempfile.mkdtemp(dir=self.root / "tmp" if self.root else None))
        try:
            raw = tmp_dir / "raw.wav"
            voice = VOICES[language]
            # -b 1: the text is UTF-8 whatever the locale; --stdin: all of it, as words.
            espeak = ["espeak-ng", "-v", voice, "-s", "150", "-b", "1", "-w", self._inner(raw),
                      "--stdin"]  # fmt: skip
            self._run(espeak, dest.name, stdin=text.encode("utf-8"), deadline=deadline)
            self._run(
                ["sox", self._inner(raw), *SOX_8K, self._inner(dest)],
                dest.name,
                deadline=deadline,
            )
        finally:
            shutil.rmtree(tmp_dir, ignore_errors=True)

    def install(self, source: Path, dest: Path) -> None:
        """Install a recorded prompt (converted to 8 kHz mono 16-bit WAV)."""
        self._mkdir(dest.parent)
        tmp_dir = Path(tempfile.mkdtemp(dir=self.root / "tmp" if self.root else None))
        try:
            staged = tmp_dir / source.name
            shutil.copyfile(source, staged)
            self._run(["sox", self._inner(staged), *SOX_8K, self._inner(dest)], dest.name)
        finally:
            shutil.rmtree(tmp_dir, ignore_errors=True)


def build_catalogue(
    catalogue: PromptCatalogue,
    sounds_dir: Path,
    synth: Synthesizer,
    recorded_dir: Path | None = None,
    *,
    workers: int = 4,
) -> int:
    """Write every prompt to sounds_dir/<lang>/cti/<name>.wav (recorded files win) and the
    Mandarin digits; skip the work when the catalogue's stamp is already there."""
    stamp = sounds_dir / f".cti-prompts-{catalogue.digest()}"
    if stamp.exists():
        return 0
    jobs: list[tuple[str, str, Path]] = []
    for name, langs in catalogue.texts.items():
        for lang, text in langs.items():
            dest = sounds_dir / lang / SUBDIR / f"{name}.wav"
            recorded = recorded_dir / lang / f"{name}.wav" if recorded_dir else None
            if recorded is not None and recorded.exists():
                synth.install(recorded, dest)
            else:
                jobs.append((text, lang, dest))
    for digit, text in ZH_DIGITS.items():
        jobs.append((text, "zh", sounds_dir / "zh" / "digits" / f"{digit}.wav"))
    with ThreadPoolExecutor(workers) as pool:
        list(pool.map(lambda job: synth.synth(*job), jobs))
    for old in sounds_dir.glob(".cti-prompts-*"):
        old.unlink()
    stamp.write_text(str(len(jobs)))
    logger.info("synthesised %d prompts into %s", len(jobs), sounds_dir)
    return len(jobs)


def check_catalogue(catalogue: PromptCatalogue, used: set[str], languages: tuple[str, ...]) -> None:
    """Every prompt the IVR uses exists; those the code plays exist in every language."""
    missing = used - catalogue.names()
    if missing:
        raise ConfigError(f"prompts used but not in the catalogue: {', '.join(sorted(missing))}")
