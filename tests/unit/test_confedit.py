"""Setting options in Asterisk configuration text."""

from cti.confedit import set_option

TEXT = """[general]
port = 5038 ; AMI port
bindaddr = 0.0.0.0

[cti]
secret = change-me
"""


def test_replaces_the_value_and_keeps_the_comment() -> None:
    out = set_option(TEXT, "general", "port", "15038")
    assert "port = 15038 ; AMI port" in out
    assert "secret = change-me" in out


def test_only_the_named_section_changes() -> None:
    out = set_option(TEXT, "cti", "secret", "abc")
    assert "secret = abc" in out and "port = 5038" in out


def test_missing_key_and_section_are_added() -> None:
    out = set_option(TEXT, "cti", "read", "system")
    assert "[cti]\nread = system" in out
    out = set_option(TEXT, "new", "x", "1")
    assert out.rstrip().endswith("[new]\nx = 1")


def test_arrow_syntax() -> None:
    out = set_option(
        "[directories]\nastetcdir => /etc/asterisk\n", "directories", "astetcdir", "/x"
    )
    assert "astetcdir => /x" in out


def test_every_option_of_a_repeated_section_name() -> None:
    from cti.confedit import options, replace_options

    text = (
        "[1001](agent-endpoint)\nauth = 1001\n[1001](agent-auth)\npassword = change-me-1001\n"
        "[1002](agent-auth)\npassword = mine ; kept\n[globals]\nCTI_AGI_SECRET =\n"
    )
    assert options(text, "password") == [("1001", "change-me-1001"), ("1002", "mine")]
    out = replace_options(text, "password", lambda s, v: "new" if v.startswith("change") else None)
    assert "password = new\n" in out and "password = mine ; kept" in out
    assert "CTI_AGI_SECRET = abc" in set_option(text, "globals", "CTI_AGI_SECRET", "abc")
