"""Who may open a FastAGI session (cti.ivr.agi.AgiAccess): addresses, networks, host names, and
the shared secret in the session's URL."""

from cti.ivr.agi import AgiAccess, script_key, script_route


async def test_addresses_networks_and_names() -> None:
    default = AgiAccess()
    assert await default.allows_peer("127.0.0.1") and await default.allows_peer("::1")
    assert await default.allows_peer("::ffff:127.0.0.1")  # IPv4 on a dual-stack socket
    assert not await default.allows_peer("127.0.0.3") and not await default.allows_peer("")
    net = AgiAccess(("172.16.0.0/12",))
    assert await net.allows_peer("172.18.0.5") and not await net.allows_peer("127.0.0.1")
    named = AgiAccess(("localhost",))  # resolved from /etc/hosts
    assert await named.allows_peer("127.0.0.1")


def test_the_secret_travels_in_the_url() -> None:
    env = {"agi_network_script": "ivr?key=s3cret"}
    assert script_route(env) == "ivr" and script_key(env) == "s3cret"
    assert AgiAccess(secret="s3cret").allows_session(env)
    assert not AgiAccess(secret="other").allows_session(env)
    assert not AgiAccess(secret="s3cret").allows_session({"agi_network_script": "ivr"})
    assert AgiAccess().allows_session({"agi_network_script": "survey"})  # none set: unchecked
    assert script_route({"agi_network_script": "/survey"}) == "survey"
