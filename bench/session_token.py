"""Session token sizes and seal/open cost, beside their floor and a peer, in one run.

    .venv/bin/python -m bench.session_token [--rounds N]

Sizes: a typical role session (web identity, two tags, no session policy), the largest session
with realistic values (2,048-character session policy, 10 policy ARNs, 50 tags, a source
identity, MFA, chained), and the same with every field at AWS's maximum length (which is over
the token limit and refused with ``PackedPolicyTooLarge``, as AWS refuses it).

Cost: ``issue_credentials`` (ids, JSON, zlib, AES-GCM, base64) and ``open_session_token`` for
the typical token, in interleaved rounds with raw AES-GCM over the same claims JSON (the floor)
and a Fernet token of it (the peer PERFORMANCE.md quotes at ≈ 18 µs). Medians of the per-round
means; ratios from the same run. The key ring reads the store at most once a second, so the
rounds never touch the database.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import string
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cryptography.fernet import Fernet
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from fedbroker.credentials.keyring import KeyRing
from fedbroker.credentials.sealing import MasterKey
from fedbroker.credentials.session_token import (
    MAX_TOKEN_LENGTH,
    PackedPolicyTooLargeError,
    PrincipalType,
    SessionClaims,
    issue_credentials,
    open_session_token,
)
from fedbroker.directory.sql import SqlStore

T0 = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
ACCOUNT = "123456789012"
ROLE = f"arn:aws:iam::{ACCOUNT}:role/ci-deploy"
SESSION = "github-actions-1234567890"


def typical() -> SessionClaims:
    return SessionClaims(
        account_id=ACCOUNT,
        principal_type=PrincipalType.ASSUMED_ROLE,
        principal_arn=f"arn:aws:sts::{ACCOUNT}:assumed-role/ci-deploy/{SESSION}",
        principal_id=f"AROA3XFRBF535PLBIFPI4:{SESSION}",
        role_arn=ROLE,
        role_session_name=SESSION,
        tags={"team": "payments", "env": "prod"},
        issued=T0,
        expires=T0 + timedelta(hours=1),
        provider=f"arn:aws:iam::{ACCOUNT}:oidc-provider/token.actions.githubusercontent.com",
        subject="repo:example-org/payments-service:ref:refs/heads/main",
        session_id="Zk3bq0yJ4n2o1mXc8yR6Vw",
    )


def largest(key_len: int, value_len: int, arn_name_len: int) -> SessionClaims:
    """50 tags, 10 policy ARNs, a 2,048-character session policy, a 64-character source
    identity; random characters, so compression helps as little as it would in the worst
    case."""
    rnd = random.Random(7)

    def text(n: int) -> str:
        return "".join(rnd.choice(string.ascii_letters + string.digits) for _ in range(n))

    statements: list[dict[str, object]] = []
    policy = ""
    while True:
        statements.append(
            {
                "Sid": f"S{len(statements)}",
                "Effect": "Allow",
                "Action": ["s3:GetObject", "s3:PutObject"],
                "Resource": f"arn:aws:s3:::bucket-{text(8)}/prefix/*",
            }
        )
        candidate = json.dumps({"Version": "2012-10-17", "Statement": statements})
        if len(candidate) > 2048:
            break
        policy = candidate
    return SessionClaims(
        account_id=ACCOUNT,
        principal_type=PrincipalType.ASSUMED_ROLE,
        principal_arn=f"arn:aws:sts::{ACCOUNT}:assumed-role/ci-deploy/{SESSION}",
        principal_id=f"AROA3XFRBF535PLBIFPI4:{SESSION}",
        role_arn=ROLE,
        role_session_name=SESSION,
        source_identity=text(64),
        tags={f"{text(key_len - 2)}{k:02d}": text(value_len) for k in range(50)},
        transitive_tag_keys=(),
        session_policy=policy,
        session_policy_arns=tuple(
            f"arn:aws:iam::{ACCOUNT}:policy/{text(arn_name_len)}" for _ in range(10)
        ),
        mfa_authenticated=True,
        mfa_time=T0,
        issued=T0,
        expires=T0 + timedelta(hours=1),
        provider=f"arn:aws:iam::{ACCOUNT}:oidc-provider/token.actions.githubusercontent.com",
        subject="repo:example-org/payments-service:ref:refs/heads/main",
        session_id="Zk3bq0yJ4n2o1mXc8yR6Vw",
        chained=True,
    )


def _rounds(
    contenders: dict[str, Callable[[], object]], rounds: int, calls: int
) -> dict[str, float]:
    """Median over rounds of the mean µs per call; the order rotates each round."""
    samples: dict[str, list[float]] = {name: [] for name in contenders}
    names = list(contenders)
    for index in range(rounds):
        order = names[index % len(names) :] + names[: index % len(names)]
        for name in order:
            run = contenders[name]
            start = time.perf_counter_ns()
            for _ in range(calls):
                run()
            samples[name].append((time.perf_counter_ns() - start) / calls / 1000)
    return {name: statistics.median(values) for name, values in samples.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=30)
    parser.add_argument("--calls", type=int, default=500)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        store = SqlStore(f"sqlite:///{Path(tmp) / 'bench.db'}")
        ring = KeyRing(store, MasterKey(os.urandom(32), development=True))
        ring.ensure_keys(T0)
        now = T0 + timedelta(minutes=1)

        print(f"token limit: {MAX_TOKEN_LENGTH} characters")
        creds = issue_credentials(ring, typical(), now)
        print(f"typical role session (2 tags, no session policy): {len(creds.session_token)} B")
        for label, shape in (
            ("largest, realistic values (tag 20/40, ARN names 30)", (20, 40, 30)),
            ("largest, AWS's maximum lengths (tag 128/256, ARNs 2048)", (128, 256, 2000)),
        ):
            claims = largest(*shape)
            try:
                size = f"{len(issue_credentials(ring, claims, now).session_token)} B"
            except PackedPolicyTooLargeError as error:
                size = f"refused: {error.message}"
            print(f"{label}: {size}")

        token, key_id = creds.session_token, creds.access_key_id
        payload = json.dumps({"claims": "x" * 500}).encode()
        aead, fernet = AESGCM(os.urandom(32)), Fernet(Fernet.generate_key())
        sealed, fernet_token = aead.encrypt(b"\0" * 12, payload, None), fernet.encrypt(payload)
        claims = typical()
        medians = _rounds(
            {
                "issue (seal)": lambda: issue_credentials(ring, claims, now),
                "open": lambda: open_session_token(ring, token, key_id, now),
                "raw AES-GCM seal 500 B": lambda: aead.encrypt(os.urandom(12), payload, None),
                "raw AES-GCM open 500 B": lambda: aead.decrypt(b"\0" * 12, sealed, None),
                "Fernet encrypt": lambda: fernet.encrypt(payload),
                "Fernet decrypt": lambda: fernet.decrypt(fernet_token),
            },
            args.rounds,
            args.calls,
        )
        print(f"\nmedian µs per call over {args.rounds} interleaved rounds:")
        for name, value in medians.items():
            print(f"  {name:<24} {value:8.1f}")
        for ours, peer in (("open", "Fernet decrypt"), ("issue (seal)", "Fernet encrypt")):
            print(f"  {ours} / {peer}: {medians[ours] / medians[peer]:.2f} times")
        store.close()


if __name__ == "__main__":
    main()
