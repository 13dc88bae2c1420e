"""One exception tree for the whole server; caught only at boundaries."""


class CtiError(Exception):
    """Base of every error the server raises on purpose."""


class ConfigError(CtiError):
    """A setting or configuration file is wrong; the message names it."""


class SandboxError(CtiError):
    """The Asterisk sandbox could not be built, started or stopped."""


class AmiError(CtiError):
    """Something went wrong talking to Asterisk over AMI."""


class AmiAuthError(AmiError):
    """Asterisk refused the AMI user name or secret: retrying will not help."""


class AmiDisconnected(AmiError):
    """The AMI connection dropped before an action got its response."""


class AmiTimeout(AmiError):
    """An AMI action got no complete response in time."""


class AmiActionFailed(AmiError):
    """Asterisk answered an action with Response: Error."""


class ProtocolError(CtiError):
    """A peer sent something that does not parse (AMI frame, AGI line)."""


class IvrError(CtiError):
    """An IVR step failed in a way the caller should hear about."""


class NotFound(CtiError):
    """The thing asked for does not exist."""


class Conflict(CtiError):
    """The request clashes with the current state."""


class InvalidInput(CtiError):
    """A field or argument is malformed; the message says which and why."""
