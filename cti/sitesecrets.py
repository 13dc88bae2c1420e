"""Per-site secrets in Asterisk's configuration, made at deploy.

`asterisk-conf/` ships placeholders that anyone who has read it knows: the AMI secret
(`change-me-on-every-site`), the phones' and the trunk's passwords (`change-me-…`), an empty
FastAGI secret. `write_site_secrets` replaces every placeholder still in a deployed copy with
a random value (or the one given, for the secrets the CTI server must share), leaving values a
site set itself alone; `cti asterisk-secrets` and the sandbox use it, and the container's
entrypoint does the same in shell. `placeholders` and `is_placeholder` say what is left: `cti
serve` refuses to run with an AMI secret that is one, or against an Asterisk whose PJSIP auths
still have one (when its AMI user may list them).
"""

import secrets
from dataclasses import dataclass, field
from pathlib import Path

from cti.confedit import options, replace_options, set_option
from cti.errors import ConfigError

PLACEHOLDER_PREFIX = "change-me"
# Shipped by earlier versions of asterisk-conf/ (still in configurations deployed from them).
OLD_PLACEHOLDERS = frozenset({"trunk-password", "sim-secret"})


def is_placeholder(value: str) -> bool:
    """True for a secret anyone could know: empty, `change-me…`, or a value we once shipped."""
    v = value.strip()
    return not v or v.lower().startswith(PLACEHOLDER_PREFIX) or v in OLD_PLACEHOLDERS


def new_secret() -> str:
    """A random secret (144 bits, URL- and config-safe: letters, digits, - and _)."""
    return secrets.token_urlsafe(18)


@dataclass
class SiteSecrets:
    """What `write_site_secrets` set: the shared secrets and the names it changed."""

    ami_secret: str
    agi_secret: str
    changed: list[str] = field(default_factory=list)


def _check_given(name: str, value: str | None) -> None:
    if value is not None and is_placeholder(value):
        raise ConfigError(f"{name} is empty or a shipped placeholder: give a secret of your own")


def write_site_secrets(
    conf_dir: Path,
    *,
    ami_secret: str | None = None,
    agi_secret: str | None = None,
    trunk_password: str | None = None,
) -> SiteSecrets:
    """Put per-site secrets into the Asterisk configuration in `conf_dir` (in place).

    The AMI user `[cti]` and the dialplan's CTI_AGI_SECRET get the values given (the CTI server
    needs the same), else a random one where a placeholder is; every PJSIP password that is a
    placeholder gets a random one (the carrier trunk's: `trunk_password` when given). Values a
    site set itself are kept, so running it again changes nothing.
    """
    _check_given("the AMI secret", ami_secret)
    _check_given("the FastAGI secret", agi_secret)
    _check_given("the trunk password", trunk_password)
    changed: list[str] = []

    manager = conf_dir / "manager.conf"
    text = manager.read_text()
    current = dict(options(text, "secret")).get("cti")
    if current is None:
        raise ConfigError(f"{manager}: no [cti] user with a secret")
    ami = ami_secret or (new_secret() if is_placeholder(current) else current)
    if ami != current:
        manager.write_text(set_option(text, "cti", "secret", ami))
        changed.append("manager.conf [cti] secret")

    pjsip = conf_dir / "pjsip.conf"
    text = pjsip.read_text()

    def password(section: str, value: str) -> str | None:
        if section == "carrier" and trunk_password and value != trunk_password:
            changed.append("pjsip.conf [carrier] password")
            return trunk_password
        if not is_placeholder(value):
            return None
        changed.append(f"pjsip.conf [{section}] password")
        return new_secret()

    text = replace_options(text, "password", password)
    pjsip.write_text(text)

    extensions = conf_dir / "extensions.conf"
    text = extensions.read_text()
    current = dict(options(text, "CTI_AGI_SECRET")).get("globals", "")
    agi = agi_secret or (new_secret() if is_placeholder(current) else current)
    if agi != current:
        extensions.write_text(set_option(text, "globals", "CTI_AGI_SECRET", agi))
        changed.append("extensions.conf [globals] CTI_AGI_SECRET")
    return SiteSecrets(ami, agi, changed)


def placeholders(conf_dir: Path) -> list[str]:
    """Where the configuration in `conf_dir` still has a placeholder secret."""
    left = []
    for fname, key in (
        ("manager.conf", "secret"),
        ("pjsip.conf", "password"),
        ("pjsip_webrtc.conf", "password"),  # the softphones' (cti/softphone.py)
        ("extensions.conf", "CTI_AGI_SECRET"),
    ):
        path = conf_dir / fname
        if not path.exists():
            continue
        for section, value in options(path.read_text(), key):
            if is_placeholder(value):
                left.append(f"{fname} [{section}] {key}")
    return left
