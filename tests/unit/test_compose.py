"""docker-compose.yml is well-formed and consistent with the settings the server reads."""

import re
from pathlib import Path

import yaml

from cti.settings import Settings, load_settings

ROOT = Path(__file__).resolve().parents[2]


def compose() -> dict:  # type: ignore[type-arg]
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())


def substituted(env: dict[str, str]) -> dict[str, str]:
    """Compose's ${VAR:-default} as a site that sets nothing gets it."""
    return {
        k: re.sub(r"\$\{(\w+)(?::-([^}]*))?\}", lambda m: m.group(2) or "", str(v))
        for k, v in env.items()
    }


# What the CTI entrypoint (docker/cti-entrypoint.sh) reads: PostgreSQL's address for the
# database URL it makes with the stored password.
ENTRYPOINT_ENV = {"POSTGRES_HOST", "POSTGRES_DB", "POSTGRES_USER"}


def server_env(c: dict) -> dict[str, str]:  # type: ignore[type-arg]
    """The cti service's environment as `cti serve` gets it from the entrypoint: the secrets
    read from the `secrets` volume, the database URL made from POSTGRES_*."""
    env = substituted(c["services"]["cti"]["environment"])
    url = (f"postgresql+asyncpg://{env['POSTGRES_USER']}:pw@{env['POSTGRES_HOST']}:5432/"
           f"{env['POSTGRES_DB']}")  # fmt: skip
    out = {k: v for k, v in env.items() if k not in ENTRYPOINT_ENV}
    return {**out, "CTI_AMI_SECRET": "s3cret", "CTI_AGI_SECRET": "agi-s3cret",
            "CTI_DATABASE_URL": url}  # fmt: skip


def test_services_and_volumes() -> None:
    c = compose()
    assert set(c["services"]) == {"init", "asterisk", "cti", "postgres"}
    for svc in c["services"].values():
        for vol in svc.get("volumes", []):
            assert vol.split(":")[0] in c["volumes"]
    # What must survive `down`/`up` is in named volumes, shared where two containers need it.
    mounts = {name: {v.split(":")[0]: v.split(":")[1] for v in svc.get("volumes", [])}
              for name, svc in c["services"].items()}  # fmt: skip
    assert mounts["asterisk"]["media"] == mounts["cti"]["media"]  # voicemail written, then read
    assert mounts["asterisk"]["prompts"] == mounts["cti"]["prompts"]  # made by cti, played
    assert "cti-data" in mounts["cti"] and "pgdata" in mounts["postgres"]
    assert {"secrets"} <= set(mounts["init"]) & set(mounts["cti"]) & set(mounts["asterisk"])


def test_cti_environment_is_what_the_server_reads() -> None:
    c = compose()
    env = substituted(c["services"]["cti"]["environment"])
    known = {f"CTI_{name.upper()}" for name in Settings.__dataclass_fields__}
    assert set(env) <= known | ENTRYPOINT_ENV, set(env) - known - ENTRYPOINT_ENV
    s = load_settings(None, server_env(c))
    assert s.database_url.startswith("postgresql+asyncpg://cti:pw@postgres:5432/")
    assert s.ami_host == "asterisk" and s.ami_user == "cti" and s.ami_secret == "s3cret"
    assert s.timezone == "Asia/Shanghai"
    assert str(s.http_port) in c["services"]["cti"]["ports"][0]
    pg = c["services"]["postgres"]["environment"]
    assert s.database_url.rsplit("/", 1)[1] == pg["POSTGRES_DB"]
    assert s.ami_user in (ROOT / "asterisk-conf" / "manager.conf").read_text()


def test_queue_log_is_shared_between_asterisk_and_cti() -> None:
    c = compose()
    s = load_settings(None, server_env(c))
    log_dir = str(Path(s.queue_log_path).parent)
    ast = {v.split(":")[1]: v.split(":")[0] for v in c["services"]["asterisk"]["volumes"]}
    cti = {v.split(":")[1]: v.split(":")[0] for v in c["services"]["cti"]["volumes"]}
    assert ast[log_dir] == cti[log_dir]


def test_agi_address_matches_between_asterisk_and_cti() -> None:
    c = compose()
    a = substituted(c["services"]["asterisk"]["environment"])
    s = load_settings(None, server_env(c))
    assert a["CTI_AGI_HOST"] == "cti" and int(a["CTI_AGI_PORT"]) == s.agi_port
    # The same FastAGI secret on both sides (both entrypoints read agi-secret from the secrets
    # volume init fills), and only the asterisk container may use FastAGI.
    for name in ("asterisk", "cti"):
        text = (ROOT / "docker" / f"{name}-entrypoint.sh").read_text()
        assert "agi-secret" in text and "ami-secret" in text
    assert s.effective_agi_allowed_hosts == ("asterisk",)
    assert not [p for p in c["services"]["cti"].get("ports", []) if "4573" in str(p)]


def test_sip_is_not_published_on_every_interface_by_default() -> None:
    for port in compose()["services"]["asterisk"]["ports"]:
        address = re.sub(r"\$\{CTI_SIP_ADDRESS:-([^}]*)\}", r"\1", str(port)).split(":")[0]
        assert address == "127.0.0.1", port


def test_images_are_built_from_this_repository() -> None:
    c = compose()
    for name in ("asterisk", "cti"):
        dockerfile = ROOT / c["services"][name]["build"]["dockerfile"]
        assert dockerfile.exists()
    assert "COPY asterisk-conf/ /etc/asterisk/" in (ROOT / "docker/asterisk.Dockerfile").read_text()
