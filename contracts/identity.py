"""Who is acting, proven: short-lived signed statements ("assertions"), verified where they act.

An operator's request (acknowledge, approve, ...) and every signal the intake sends (alerts,
PagerDuty events) carry an assertion: a statement of who, which action, which run, which plan,
a digest of the exact request, when it was issued and until when it holds; signed with Ed25519.
The sign-in service signs operators' statements and the intake signs its own; the runbook
workflows verify them against the public keys the worker's policy lists (`trust`). A public
key is no secret, so histories stay free of secrets and verification stays deterministic.

Wire format: `base64url(statement JSON) "." base64url(signature over those JSON bytes)`.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from collections.abc import Iterable
from datetime import datetime, timedelta
from functools import lru_cache
from typing import Any, Literal

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from pydantic import BaseModel, Field, ValidationError, field_validator

from contracts.common import Duration, Strict

Issuer = Literal["signin", "intake"]
MAX_TOKEN = 4096  # characters: a statement is a few hundred


class IdentityError(ValueError):
    """The assertion does not prove what the request claims; the message says why."""


def _b64decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def b64encode(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def public_key_bytes(text: str) -> bytes:
    """A public key as the policy lists it: 32 raw bytes in base64 (standard or URL-safe)."""
    try:
        raw = base64.b64decode(text.strip().replace("-", "+").replace("_", "/") + "=" * (-len(text.strip()) % 4))
    except (binascii.Error, ValueError):
        raise ValueError(f"{text[:20]!r}... is not base64") from None
    if len(raw) != 32:
        raise ValueError(f"an Ed25519 public key is 32 bytes, not {len(raw)}")
    return raw


def key_id(public_key: str | bytes) -> str:
    """A key's id, derived from the key itself (so a listed id can never name another key)."""
    raw = public_key if isinstance(public_key, bytes) else public_key_bytes(public_key)
    return "ed25519:" + hashlib.sha256(raw).hexdigest()[:16]


@lru_cache(maxsize=64)
def _loaded(public_key: str) -> Ed25519PublicKey:
    return Ed25519PublicKey.from_public_bytes(public_key_bytes(public_key))


class Trust(Strict):
    """The policy's `trust` section: whose signatures the runbooks accept.

    `operators`: public keys of the sign-in service (operators' actions). `intake`: public keys
    of the intake (alerts, PagerDuty events). Several keys each, for rotation: list the new key,
    move the signer to it, then drop the old one.
    """

    operators: list[str] = Field(default_factory=list)
    intake: list[str] = Field(default_factory=list)
    max_lifetime: Duration = timedelta(minutes=10)  # the longest an assertion may hold
    clock_skew: Duration = timedelta(minutes=2)  # between the signers' clocks and Temporal's

    @field_validator("operators", "intake")
    @classmethod
    def _keys(cls, keys: list[str]) -> list[str]:
        for key in keys:
            public_key_bytes(key)
        return keys

    def keys(self, issuer: Issuer) -> dict[str, str]:
        """The trusted keys of an issuer by key id."""
        return {key_id(key): key for key in (self.operators if issuer == "signin" else self.intake)}


class Statement(Strict):
    """What an assertion says. Times are Unix seconds."""

    v: Literal[1] = 1
    kid: str  # which key signed it
    iss: Issuer
    sub: str = Field(min_length=1)  # who: an operator, or who handed an alert over ("intake/alertmanager")
    act: str  # an Update's name, or "alert" / "pagerduty_event"
    wf: str  # the workflow id
    run: str | None = None  # the run chain's first run id (None: any run of the workflow id)
    plan: str | None = None  # the plan the decision is about
    req: str  # request_digest of the request it came with
    iat: int
    exp: int
    jti: str = Field(min_length=8, max_length=64)  # unique: an assertion acts once


def request_digest(request: BaseModel) -> str:
    """The SHA-256 of a request's canonical JSON, without its own assertion: both sides compute it
    from the same model, so the statement binds the exact request. Fields at their default are
    left out, so a field added to a contract later (with a default) leaves the signatures of
    signers that do not know it, and the histories that hold them, valid."""
    data: dict[str, Any] = request.model_dump(mode="json", exclude={"assertion"}, exclude_defaults=True)
    canonical = json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode()).hexdigest()


def read(token: str) -> tuple[Statement, bytes, bytes]:
    """The statement, the signed bytes and the signature; IdentityError if malformed."""
    if len(token) > MAX_TOKEN:
        raise IdentityError(f"the assertion is malformed: longer than {MAX_TOKEN} characters")
    body, dot, signature = token.partition(".")
    if not dot or not body or not signature:
        raise IdentityError("the assertion is malformed: not STATEMENT.SIGNATURE")
    try:
        signed, sig = _b64decode(body), _b64decode(signature)
        statement = Statement.model_validate_json(signed)
    except (binascii.Error, ValueError, ValidationError) as err:
        raise IdentityError(f"the assertion is malformed: {str(err).splitlines()[0]}") from None
    return statement, signed, sig


def verify(token: str | None, trust: Trust, issuer: Issuer, now: datetime | None) -> Statement:
    """The statement, if signed by a trusted key of `issuer` and (with `now`) within its time.

    `now` None skips the time check: signals are judged by when they were signed against the
    run's start, because a worker that was down handles them late (see `verify_signal`).
    """
    if not token:
        raise IdentityError("no signed assertion: sign in (`runbook login`) and act through the sign-in service")
    statement, signed, signature = read(token)
    keys = trust.keys(issuer)
    if statement.iss != issuer:
        raise IdentityError(f"the assertion was issued by the {statement.iss}, not the {issuer}")
    if statement.kid not in keys:
        where = "trust.operators" if issuer == "signin" else "trust.intake"
        raise IdentityError(
            f"the assertion is signed by key {statement.kid}, which the policy does not trust ({where})"
        )
    try:
        _loaded(keys[statement.kid]).verify(signature, signed)
    except InvalidSignature:
        raise IdentityError("the assertion's signature is not valid") from None
    if statement.exp - statement.iat > trust.max_lifetime.total_seconds():
        raise IdentityError(
            f"the assertion holds longer than the policy allows (trust.max_lifetime {trust.max_lifetime})"
        )
    if now is not None:
        at, skew = now.timestamp(), trust.clock_skew.total_seconds()
        if statement.exp < at - skew:
            raise IdentityError(
                f"the assertion expired at {datetime.fromtimestamp(statement.exp, now.tzinfo):%H:%M:%S} UTC; "
                "sign in again"
            )
        if statement.iat > at + skew:
            raise IdentityError("the assertion was issued in the future (clock skew beyond trust.clock_skew)")
    return statement


def verify_operator(
    request: Any,
    trust: Trust,
    action: str,
    workflow_id: str,
    run_id: str,
    plan_id: str | None,
    now: datetime,
    used: Iterable[str] = (),
) -> Statement:
    """An operator's request, proven: signed by the sign-in service for this person, this action,
    this run, this plan and exactly this request, not expired and not used before."""
    statement = verify(getattr(request, "assertion", None), trust, "signin", now)
    if statement.act != action:
        raise IdentityError(f"the assertion is for {statement.act!r}, not {action!r}")
    if statement.wf != workflow_id or statement.run != run_id:
        raise IdentityError(f"the assertion is for another run ({statement.wf}, run {statement.run or 'none'})")
    if plan_id is not None and statement.plan != plan_id:
        raise IdentityError(f"the assertion is for plan {statement.plan or '(none)'}, not {plan_id}")
    if request.by != statement.sub:
        raise IdentityError(f"the request is made in the name of {request.by}, but the assertion is {statement.sub}'s")
    if statement.req != request_digest(request):
        raise IdentityError("the request differs from the one the assertion was signed for")
    if statement.jti in set(used):
        raise IdentityError("the assertion was used already")
    return statement


def verify_signal(
    payload: Any, trust: Trust, action: str, workflow_id: str, started_at: datetime, sender: str | None = None
) -> Statement:
    """A signal the intake sent: signed by the intake for this workflow and exactly this payload,
    and signed no earlier than the run's start (less the clock skew), so an old signed signal
    replayed into a later run of the same workflow id is refused. Expiry is not checked: the
    worker may handle a signal long after Temporal took it."""
    statement = verify(getattr(payload, "assertion", None), trust, "intake", None)
    if statement.act != action:
        raise IdentityError(f"the assertion is for {statement.act!r}, not {action!r}")
    if statement.wf != workflow_id:
        raise IdentityError(f"the assertion is for another workflow ({statement.wf})")
    if statement.iat < started_at.timestamp() - trust.clock_skew.total_seconds():
        raise IdentityError("the assertion was signed before this run started")
    if sender is not None and statement.sub != sender:
        raise IdentityError(f"the assertion was signed for {statement.sub}, not {sender}")
    if statement.req != request_digest(payload):
        raise IdentityError("the payload differs from the one the intake signed")
    return statement
