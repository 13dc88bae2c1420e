"""Signed links the desk mails out: confirm or reopen a resolved incident (only its requester
receives the link: the proof of identity), confirm a subscription (only the address's owner
receives it: nobody can subscribe someone else) and unsubscribe."""

from dataclasses import dataclass
from urllib.parse import quote

from itsdangerous import BadSignature, SignatureExpired, URLSafeTimedSerializer

from cti.errors import InvalidInput

FEEDBACK_DAYS = 30
SUBSCRIBE_DAYS = 2


@dataclass(frozen=True)
class Feedback:
    """Who may confirm or reopen what: the incident's number and the resolution the link was
    made for (a link from an earlier resolution is void once the incident was reopened)."""

    number: str
    resolved_at: str


class Links:
    """Makes and reads the links; `public_url` is where people reach the portal."""

    def __init__(self, secret: str, public_url: str) -> None:
        self.public_url = public_url.rstrip("/")
        self._feedback = URLSafeTimedSerializer(secret, salt="cti-portal-feedback")
        self._subscribe = URLSafeTimedSerializer(secret, salt="cti-portal-subscribe")
        self._unsubscribe = URLSafeTimedSerializer(secret, salt="cti-portal-unsubscribe")

    def feedback_url(self, number: str, resolved_at: str) -> str:
        """The link in a resolution notice."""
        token = self._feedback.dumps({"n": number, "r": resolved_at})
        return f"{self.public_url}/portal/feedback?t={quote(token)}"

    def read_feedback(self, token: str) -> Feedback:
        """The link's incident; InvalidInput when it is forged, garbled or too old."""
        doc = _load(self._feedback, token, FEEDBACK_DAYS)
        if not isinstance(doc, dict) or not isinstance(doc.get("n"), str):
            raise InvalidInput("this link is not valid")
        return Feedback(doc["n"], str(doc.get("r", "")))

    def subscribe_url(self, email: str) -> str:
        """The link in the confirmation of a subscription."""
        return f"{self.public_url}/portal/subscribe/confirm?t={quote(self._subscribe.dumps(email))}"

    def read_subscribe(self, token: str) -> str:
        """The address that confirms; InvalidInput otherwise."""
        return _address(_load(self._subscribe, token, SUBSCRIBE_DAYS))

    def unsubscribe_url(self, email: str) -> str:
        """The link at the end of every publication."""
        return f"{self.public_url}/portal/unsubscribe?t={quote(self._unsubscribe.dumps(email))}"

    def read_unsubscribe(self, token: str) -> str:
        """The address that leaves; InvalidInput otherwise."""
        return _address(_load(self._unsubscribe, token, None))


def _load(serializer: URLSafeTimedSerializer, token: str, days: int | None) -> object:
    if not token or len(token) > 1000:
        raise InvalidInput("this link is not valid")
    try:
        return serializer.loads(token, max_age=days * 86400 if days else None)
    except SignatureExpired:
        raise InvalidInput("this link has expired") from None
    except BadSignature:
        raise InvalidInput("this link is not valid") from None


def _address(value: object) -> str:
    if not isinstance(value, str) or "@" not in value:
        raise InvalidInput("this link is not valid")
    return value
