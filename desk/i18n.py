"""Page texts, Mandarin first, English second."""

from aiohttp import web

LANGUAGES = ("zh", "en")

TEXTS: dict[str, dict[str, str]] = {
    "zh": {
        "title": "热线帮助 · 来电记录",
        "call_log": "来电记录",
        "arrived": "来电时间",
        "caller": "来电号码",
        "name": "姓名",
        "dialled": "被叫号码",
        "queue": "队列",
        "agent": "坐席",
        "wait": "等待(秒)",
        "talk": "通话(秒)",
        "outcome": "结果",
        "source": "来源",
        "live": "进行中",
        "all": "全部",
        "filter": "筛选",
        "prev": "上一页",
        "next": "下一页",
        "total": "共 {n} 条",
        "ami_up": "已连接 Asterisk",
        "ami_down": "未连接 Asterisk",
        "reconciled": "已核对(补录)",
        "other_lang": "English",
        "answered": "已接听",
        "abandoned": "放弃",
        "queue_timeout": "排队超时",
        "left_empty": "无坐席离开",
        "queue_full": "队列已满",
        "ended_in_ivr": "IVR 内结束",
        "voicemail": "语音留言",
        "overflowed": "已溢出转移",
        "transferred": "已转值班",
        "dropped": "中断(无记录)",
    },
    "en": {
        "title": "Service desk · Call log",
        "call_log": "Call log",
        "arrived": "Arrived",
        "caller": "Caller",
        "name": "Name",
        "dialled": "Dialled",
        "queue": "Queue",
        "agent": "Agent",
        "wait": "Wait (s)",
        "talk": "Talk (s)",
        "outcome": "Outcome",
        "source": "Source",
        "live": "Live",
        "all": "All",
        "filter": "Filter",
        "prev": "Previous",
        "next": "Next",
        "total": "{n} calls",
        "ami_up": "Connected to Asterisk",
        "ami_down": "Not connected to Asterisk",
        "reconciled": "Reconciled",
        "other_lang": "中文",
        "answered": "Answered",
        "abandoned": "Abandoned",
        "queue_timeout": "Queue timeout",
        "left_empty": "Left empty queue",
        "queue_full": "Queue full",
        "ended_in_ivr": "Ended in IVR",
        "voicemail": "Voicemail",
        "overflowed": "Overflowed",
        "transferred": "To on-call",
        "dropped": "Dropped (no record)",
    },
}


def language(request: web.Request) -> str:
    """?lang=, then the cti_lang cookie, then Accept-Language; Mandarin by default."""
    lang = request.query.get("lang") or request.cookies.get("cti_lang")
    if lang in LANGUAGES:
        return lang
    accept = request.headers.get("Accept-Language", "").lower()
    if accept.startswith("en"):
        return "en"
    return "zh"
