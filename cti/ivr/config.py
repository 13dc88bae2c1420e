"""Loading the IVR's data files: the config folder's copy if there is one, else the default."""

from dataclasses import dataclass
from pathlib import Path

from cti.errors import ConfigError
from cti.ivr.hours import OpeningHours, load_hours
from cti.ivr.menu import MenuConfig, load_menu
from cti.ivr.prompts import PromptCatalogue, load_prompts

DEFAULTS = Path(__file__).parent / "defaults"

# Prompts the call flow plays by name (menus name theirs in menu.yaml).
CODE_PROMPTS = {
    "welcome", "invalid_choice", "no_input", "identify_unknown", "identify_again",
    "identify_skipped", "incident_created", "incident_repeat", "transfer_agent", "status_enter",
    "status_not_found", "status_is", "state_new", "state_in_progress", "state_escalated_incident",
    "state_escalated_problem", "state_resolved", "state_closed", "status_other_caller",
    "resolved_confirm", "closed_thanks", "reopened", "status_more", "after_hours",
    "voicemail_intro", "voicemail_saved", "oncall_transfer", "announcement_intro",
    "outage_affected", "outage_linked", "survey_intro", "survey_thanks", "goodbye", "system_error",
    "overflow_whisper", "callback_offer", "callback_confirmed", "callback_hello",
    "account_enter", "privileged_refused", "recording_notice",
}  # fmt: skip


@dataclass(frozen=True)
class IvrConfig:
    """The three data files, validated together."""

    menu: MenuConfig
    prompts: PromptCatalogue
    hours: OpeningHours


def pick(config_dir: Path | None, name: str) -> Path:
    """The config folder's copy of a data file if it has one, else the default."""
    return _pick(config_dir, name)


def _pick(config_dir: Path | None, name: str) -> Path:
    if config_dir is not None and (config_dir / name).exists():
        return config_dir / name
    return DEFAULTS / name


def load_ivr_config(config_dir: Path | None = None) -> IvrConfig:
    """Load menu.yaml, prompts.yaml and hours.yaml; any error names its file and line."""
    prompts = load_prompts(_pick(config_dir, "prompts.yaml"))
    menu = load_menu(_pick(config_dir, "menu.yaml"), prompts.names())
    hours = load_hours(_pick(config_dir, "hours.yaml"))
    for name in sorted(CODE_PROMPTS):
        texts = prompts.texts.get(name)
        if texts is None:
            raise ConfigError(f"prompts.yaml: the IVR needs a prompt named {name!r}")
        missing = [lang for lang in menu.languages if lang not in texts]
        if missing:
            raise ConfigError(f"prompts.yaml: prompt {name!r} has no text for {', '.join(missing)}")
    return IvrConfig(menu, prompts, hours)
