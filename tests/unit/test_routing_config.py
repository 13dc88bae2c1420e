"""routing.yaml validation (errors name the line) and the IM payloads and signatures."""

import base64
import hashlib
import hmac
import json
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest

from cti.errors import ConfigError
from cti.routing.config import ImChannel, load_routing
from cti.routing.im import Message, build, webhook_signature
from cti.routing.rules import Measure


def write(tmp_path: Path, text: str) -> Path:
    (tmp_path / "routing.yaml").write_text(text)
    return tmp_path


def test_defaults_load() -> None:
    cfg = load_routing(None)
    helpdesk = cfg.for_queue("helpdesk")
    assert {r.measure for r in helpdesk.rules} == set(Measure)
    assert helpdesk.overflow == {"mobile": 60, "im": 30, "callback": 45}


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('queues:\n  "*":\n    rules:\n      waiting: {trip: 3, clear: 1}\n', "line 4: unknown rule 'waiting'"),
        ('queues:\n  "*":\n    rules:\n      waiting_calls: {trip: 3, clear: 5}\n', "line 4: clear must not be above trip"),
        ('queues:\n  "*":\n    rules:\n      waiting_calls: {trip: x, clear: 1}\n', "line 4: 'x' is not a number"),
        ('queues:\n  helpdesk:\n    rules: {}\n', 'needs a "*" entry'),
        ('queues:\n  "*":\n    rules: {}\n    overflow:\n      fax: {}\n', "line 5: unknown overflow action 'fax'"),
        ('queues:\n  "*":\n    rules: {}\nim:\n  channels:\n    x: {kind: icq, url: "http://a"}\n', "line 6: kind must be"),
        ('queues:\n  "*":\n    rules: {}\nim:\n  channels: {}\n  alerts: [nope]\n', "line 6: unknown channel nope"),
        ('queues:\n  "*":\n    rules: {}\nwallboard:\n  waiting: [1]\n', "line 5: expected [amber, red]"),
        ('queues:\n  "*":\n    rules: {}\nwallboard:\n  service_level_seconds: 30\n', "line 5: the service-level threshold is one setting"),
        ("queues: [\n", "line"),
    ],
)  # fmt: skip
def test_errors_name_the_line(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(ConfigError) as err:
        load_routing(write(tmp_path, text))
    assert message in str(err.value)


MSG = Message(
    "call_offer",
    "排队来电",
    ("来电: 13800138000",),
    "http://127.0.0.1/take/abc",
    "接听",
    {"offer_id": 7},
)


def test_webhook_payload_and_signature() -> None:
    req = build(ImChannel("ops", "webhook", "http://127.0.0.1:9/hook", "k"), MSG, 1_800_000_000.0)
    body = json.loads(req.body)
    assert (
        body["type"] == "call_offer"
        and body["offer_id"] == 7
        and body["link"].endswith("/take/abc")
    )
    assert req.headers["X-CTI-Timestamp"] == "1800000000"
    assert req.headers["X-CTI-Signature"] == webhook_signature("k", "1800000000", req.body)


def test_dingtalk_signature_is_dingtalks() -> None:
    req = build(
        ImChannel("d", "dingtalk", "http://127.0.0.1:9/robot/send?access_token=t", "SEC"),
        MSG,
        1_800_000_000.5,
    )
    q = {k: v[0] for k, v in parse_qs(urlsplit(req.url).query).items()}
    expected = base64.b64encode(
        hmac.new(b"SEC", b"1800000000500\nSEC", hashlib.sha256).digest()
    ).decode()
    assert q["access_token"] == "t" and q["timestamp"] == "1800000000500" and q["sign"] == expected
    assert json.loads(req.body)["msgtype"] == "markdown"


def test_feishu_wecom_slack_shapes() -> None:
    f = json.loads(build(ImChannel("f", "feishu", "http://x", "S"), MSG, 1_800_000_000.0).body)
    assert f["msg_type"] == "text" and f["timestamp"] == "1800000000"
    assert (
        f["sign"]
        == base64.b64encode(hmac.new(b"1800000000\nS", b"", hashlib.sha256).digest()).decode()
    )
    w = json.loads(build(ImChannel("w", "wecom", "http://x"), MSG, 0).body)
    assert (
        w["msgtype"] == "markdown"
        and "[接听](http://127.0.0.1/take/abc)" in w["markdown"]["content"]
    )
    s = json.loads(build(ImChannel("s", "slack", "http://x"), MSG, 0).body)
    assert "<http://127.0.0.1/take/abc|接听>" in s["text"]


def test_metrics_doc_is_up_to_date() -> None:
    from reports.docs import metrics_markdown

    doc = Path(__file__).resolve().parents[2] / "docs" / "metrics.md"
    assert doc.read_text(encoding="utf-8") == metrics_markdown(), (
        "run: python -m reports.docs > docs/metrics.md"
    )
