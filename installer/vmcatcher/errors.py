"""The handler's failures, all SatchelErrors (one line, a hint, an exit code)."""

from installer.errors import EXIT_ROLLBACK_INCOMPLETE, SatchelError


class HandlerError(SatchelError):
    """The event could not be handled; OpenNebula was left as it was before."""


class OpenNebulaError(HandlerError):
    """OpenNebula refused a call or could not be reached."""


class RollbackIncomplete(HandlerError):
    """The handler failed and could not put everything back: manual action needed."""

    exit_code = EXIT_ROLLBACK_INCOMPLETE
