"""One error tree for the whole broker.

Every error carries the AWS error code, the HTTP status AWS uses for it and a message that is
safe to show to the caller: one line, lowercase, user input in backticks, no secrets. Each
protocol renders these to its own wire format in exactly one place.
"""

from __future__ import annotations

from dataclasses import dataclass


class FedbrokerError(Exception):
    """Base of every error the broker raises on purpose."""

    code: str = "InternalFailure"
    status: int = 500
    audited: bool = False  # set once the error has been written to the audit log

    def __init__(self, message: str, detail: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        # The precise reason, for the log and the audit event only (never sent to the caller).
        self.detail = detail

    def audit_message(self) -> str:
        """What the audit event records: the outward message and, if any, the precise reason."""
        if self.detail and self.detail != self.message:
            return f"{self.message} ({self.detail})"
        return self.message


class ValidationError(FedbrokerError):
    code = "ValidationError"
    status = 400


class LimitExceededError(FedbrokerError):
    code = "LimitExceeded"
    status = 409


@dataclass(frozen=True, slots=True)
class PolicyProblem:
    """One thing wrong with a policy document, located as precisely as the document allows.

    ``statement`` is the zero-based index of the statement, shown to people counting from 1
    (``None`` for a problem with the document as a whole), ``sid`` its ``Sid`` if it has one,
    ``field`` the element at fault (``Effect``, ``Condition.StringEquals`` ...).
    """

    message: str
    statement: int | None = None
    sid: str | None = None
    field: str | None = None

    def location(self) -> str:
        """Where the problem is, as people read it: ``statement 2 (AllowRead)``."""
        if self.statement is None:
            return "policy"
        where = f"statement {self.statement + 1}"
        return f"{where} ({self.sid})" if self.sid else where

    def __str__(self) -> str:
        field = f"{self.field}: " if self.field else ""
        return f"{self.location()}: {field}{self.message}"


class MalformedPolicyDocumentError(FedbrokerError):
    """A policy document that does not follow the grammar (IAM's ``MalformedPolicyDocument``)."""

    code = "MalformedPolicyDocument"
    status = 400

    def __init__(self, problems: list[PolicyProblem] | tuple[PolicyProblem, ...]) -> None:
        self.problems = tuple(problems)
        first = str(self.problems[0]) if self.problems else "malformed policy document"
        more = len(self.problems) - 1
        suffix = f" (and {more} more problem{'s' if more > 1 else ''})" if more > 0 else ""
        super().__init__(first + suffix)


class PolicyTooLargeError(FedbrokerError):
    """A policy document over the size limit for its kind (IAM's ``LimitExceeded``)."""

    code = "LimitExceeded"
    status = 409

    def __init__(self, message: str, code: str | None = None, status: int | None = None) -> None:
        super().__init__(message)
        if code is not None:
            self.code = code
        if status is not None:
            self.status = status


# --- authentication (SigV4) ------------------------------------------------------------------
# Signature and key failures collapse to a small fixed set of outward messages so they cannot
# be used as an oracle; the precise reason is kept in ``detail`` for the log and the audit event.


class AuthenticationError(FedbrokerError):
    status = 403

    def __init__(self, message: str, detail: str | None = None) -> None:
        super().__init__(message)
        self.detail = detail or message


class IncompleteSignatureError(AuthenticationError):
    code = "IncompleteSignature"
    status = 400


class MissingAuthenticationTokenError(AuthenticationError):
    code = "MissingAuthenticationToken"


class SignatureDoesNotMatchError(AuthenticationError):
    code = "SignatureDoesNotMatch"


class InvalidClientTokenIdError(AuthenticationError):
    code = "InvalidClientTokenId"


class ExpiredTokenError(AuthenticationError):
    code = "ExpiredToken"


# --- directory and IAM API --------------------------------------------------------------------


class NoSuchEntityError(FedbrokerError):
    code = "NoSuchEntity"
    status = 404


class EntityAlreadyExistsError(FedbrokerError):
    code = "EntityAlreadyExists"
    status = 409


class DeleteConflictError(FedbrokerError):
    code = "DeleteConflict"
    status = 409


class InvalidInputError(FedbrokerError):
    code = "InvalidInput"
    status = 400


class AccessDeniedError(FedbrokerError):
    code = "AccessDenied"
    status = 403


class InvalidActionError(FedbrokerError):
    code = "InvalidAction"
    status = 400


class PayloadTooLargeError(FedbrokerError):
    code = "RequestEntityTooLarge"
    status = 413


class PasswordPolicyViolationError(FedbrokerError):
    """A new password that breaks the account password policy; the message names the rules
    it breaks and never the password."""

    code = "PasswordPolicyViolation"
    status = 400


class InvalidAuthenticationCodeError(FedbrokerError):
    """An MFA code that was not accepted. Every reason (wrong, replayed, unknown device) gets the
    same outward message; the precise one is kept in ``detail`` for the log and the audit."""

    code = "InvalidAuthenticationCode"
    status = 403

    def __init__(self, message: str, detail: str | None = None) -> None:
        super().__init__(message)
        self.detail = detail or message


class InvalidUserTypeError(FedbrokerError):
    code = "InvalidUserType"
    status = 400


# --- web identity federation (AssumeRoleWithWebIdentity) -------------------------------------
# AWS STS API Reference, "AssumeRoleWithWebIdentity", Errors. Every token problem is one
# outward error with one message, so the broker cannot be used as an oracle; the precise
# reason is kept in ``detail`` for the log and the audit event.


class IdentityTokenError(FedbrokerError):
    status = 400

    def __init__(self, message: str, detail: str | None = None) -> None:
        super().__init__(message)
        self.detail = detail or message


class InvalidIdentityTokenError(IdentityTokenError):
    """The web identity token could not be verified (signature, issuer, audience, claims)."""

    code = "InvalidIdentityToken"


class ExpiredIdentityTokenError(IdentityTokenError):
    """A genuine web identity token past its ``exp`` (reported only after its signature
    checked out, so it tells nothing to a forger)."""

    code = "ExpiredTokenException"


class IdpCommunicationError(IdentityTokenError):
    """The provider's discovery document or JWKS could not be fetched and no keys are cached;
    botocore retries this code."""

    code = "IDPCommunicationError"
