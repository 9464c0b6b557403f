"""The signing side of `contracts.identity`: the sign-in service signs operators' assertions and
the intake signs the signals it sends. Only these processes hold a private key; the workers
hold the public keys (the policy's `trust`).

`python -m signing generate PATH` makes a key (PEM, mode 0600) and prints the line for the policy.
"""

from __future__ import annotations

import base64
import os
import secrets
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from functools import cached_property
from pathlib import Path
from typing import Any, TypeVar

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from pydantic import BaseModel

from contracts.identity import Issuer, Statement, b64encode, key_id, request_digest

M = TypeVar("M", bound=BaseModel)
LIFETIME = timedelta(minutes=5)  # an operator's assertion: enough to reach the workflow, no more


class SigningKeyError(ValueError):
    """The signing key is missing or unreadable; the message names the file."""


@dataclass(frozen=True)
class Signer:
    private_key: Ed25519PrivateKey
    issuer: Issuer
    clock: Callable[[], float] = time.time  # Unix seconds; tests on a time-skipping server pass its clock

    @classmethod
    def generate(cls, issuer: Issuer) -> Signer:
        return cls(Ed25519PrivateKey.generate(), issuer)

    @classmethod
    def from_file(cls, path: Path, issuer: Issuer) -> Signer:
        try:
            key = serialization.load_pem_private_key(path.read_bytes(), password=None)
        except FileNotFoundError:
            hint = f"make one: python -m signing generate {path}"
            raise SigningKeyError(f"signing key {path} does not exist ({hint})") from None
        except (ValueError, TypeError) as err:
            raise SigningKeyError(f"signing key {path} is not a PEM private key: {err}") from None
        if not isinstance(key, Ed25519PrivateKey):
            raise SigningKeyError(f"signing key {path} is not an Ed25519 key")
        return cls(key, issuer)

    @cached_property  # once per key: every hand-over in a storm names it
    def public_key(self) -> str:
        """As the policy's `trust` lists it: the 32 raw bytes, base64."""
        raw = self.private_key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
        return base64.b64encode(raw).decode()

    @cached_property
    def key_id(self) -> str:
        return key_id(self.public_key)

    def token(
        self,
        request: BaseModel,
        *,
        subject: str,
        action: str,
        workflow_id: str,
        run_id: str | None = None,
        plan_id: str | None = None,
        lifetime: timedelta = LIFETIME,
        issued_at: float | None = None,
    ) -> str:
        """An assertion for exactly `request` (its `assertion` field aside)."""
        now = int(self.clock() if issued_at is None else issued_at)
        statement = Statement(
            kid=self.key_id,
            iss=self.issuer,
            sub=subject,
            act=action,
            wf=workflow_id,
            run=run_id,
            plan=plan_id,
            req=request_digest(request),
            iat=now,
            exp=now + int(lifetime.total_seconds()),
            jti=secrets.token_urlsafe(12),
        )
        signed = statement.model_dump_json(exclude_none=False).encode()
        return f"{b64encode(signed)}.{b64encode(self.private_key.sign(signed))}"

    def sign(self, request: M, **statement: Any) -> M:
        """`request` with its assertion (a copy; the request itself is left as it was)."""
        return request.model_copy(update={"assertion": self.token(request, **statement)})


def write_key(path: Path) -> Signer:
    signer = Signer.generate("signin")
    pem = signer.private_key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "wb") as file:
        file.write(pem)
    return signer


def main(argv: list[str]) -> int:
    if len(argv) != 2 or argv[0] not in ("generate", "public"):
        print(
            "usage: python -m signing generate PATH   (a new Ed25519 key, mode 0600; prints its public key)\n"
            "       python -m signing public PATH     (prints an existing key's public key)",
            file=sys.stderr,
        )
        return 2
    path = Path(argv[1])
    try:
        signer = write_key(path) if argv[0] == "generate" else Signer.from_file(path, "signin")
    except FileExistsError:
        print(f"{path} exists already; not overwritten", file=sys.stderr)
        return 1
    except SigningKeyError as err:
        print(err, file=sys.stderr)
        return 1
    print(f"{signer.public_key}   # {signer.key_id}: list it under trust.operators or trust.intake")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
