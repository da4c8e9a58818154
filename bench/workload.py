"""Deterministic IAM workloads that all three engines can decide identically.

A workload is one principal's identity policies (``size`` statements split over up to ten
managed policies) and a pool of candidate requests. Statements come in two kinds:

* *hot* statements name one of the eight services the requests mostly use (s3, dynamodb,
  sqs, sns, lambda, kms, ec2, logs: 43 distinct actions; the requests also ask for three iam
  actions that no statement names). There are ``min(0.8 * size, 4 * sqrt(size))``
  of them (8 / 40 / 126 / 400 for 10 / 100 / 1,000 / 10,000 statements);
* *cold* statements name one of 56 other services and can never apply to a request. They are
  what a larger principal mostly adds, and a good engine should pay almost nothing for them.

Both kinds mix literal and wildcard actions (``s3:Get*``, ``dynamodb:*Item``, ``sqs:*``),
literal and wildcard resources (``arn:aws:s3:::data*/public/*``, ``arn:aws:dynamodb:*:...:table/x``,
``*``), ``Allow`` and ``Deny``, and ``StringEquals`` conditions on request-context keys.

Restrictions that keep moto's evaluator comparable (see ``bench/README.md``):

* conditions use ``StringEquals`` only (moto ignores every other operator);
* every request carries every condition key (moto treats a missing key as a match);
* every condition's value list contains the key's *good* value, and requests use either the
  good context or, for the condition-miss shape only, a context with one *bad* value (moto
  turns a failed condition into an explicit deny even on an ``Allow`` statement, and checks
  conditions before resources);
* no ``?`` wildcard, no ``NotResource``, no policy variables, actions written in their
  canonical case (moto matches actions case-sensitively, with regular expressions).
"""

from __future__ import annotations

import json
import math
import random
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

ACCOUNT = "111122223333"
PRINCIPAL_ARN = f"arn:aws:iam::{ACCOUNT}:user/alice"
REGIONS = ("eu-west-1", "us-east-1")

Document = dict[str, Any]


@dataclass(frozen=True)
class ConditionKey:
    """A context key used in conditions, with the value requests normally carry."""

    name: str
    good: str
    bad: str
    others: tuple[str, ...]


CONDITION_KEYS = (
    ConditionKey(
        "aws:RequestedRegion",
        "eu-west-1",
        "ap-southeast-2",
        ("eu-central-1", "us-east-1", "us-west-2"),
    ),
    ConditionKey("aws:PrincipalTag/team", "platform", "contractors", ("data", "security", "web")),
    ConditionKey("aws:PrincipalTag/env", "prod", "sandbox", ("staging", "dev")),
)

#: Context keys every request carries besides the condition keys (normalised, never tested).
EXTRA_CONTEXT = {
    "aws:SourceIp": "203.0.113.7",
    "aws:username": "alice",
    "aws:SecureTransport": "true",
}


@dataclass(frozen=True)
class Service:
    """One service: its actions, action wildcards, and resource ARNs."""

    prefix: str
    actions: tuple[str, ...]  # action names without the prefix
    wildcards: tuple[str, ...]  # action patterns without the prefix, e.g. "Get*"
    destructive: tuple[str, ...]  # what Deny statements name
    kind: str  # resource type in the ARN, e.g. "table/"; "" for s3 and sqs
    names: tuple[str, ...]
    regional: bool = True
    account_in_arn: bool = True

    def arn(self, name: str, region: str) -> str:
        account = ACCOUNT if self.account_in_arn else ""
        if not self.regional:
            region = ""
        return f"arn:aws:{self.prefix}:{region}:{account}:{self.kind}{name}"

    def resources(self) -> list[str]:
        regions = REGIONS if self.regional else ("",)
        return [self.arn(name, region) for name in self.names for region in regions]


def _hot_services() -> tuple[Service, ...]:
    s3_objects = tuple(
        f"{bucket}/{key}"
        for bucket in ("data-lake", "data-raw", "logs-archive", "web-assets", "audit-trail")
        for key in ("reports/2024/q1.csv", "public/index.html")
    )
    return (
        Service(
            "s3",
            (
                "GetObject",
                "PutObject",
                "DeleteObject",
                "GetObjectTagging",
                "PutObjectTagging",
                "GetObjectVersion",
            ),
            ("Get*", "Put*", "*Object", "*Tagging", "*"),
            ("DeleteObject", "PutObjectTagging", "Delete*"),
            "",
            s3_objects,
            regional=False,
            account_in_arn=False,
        ),
        Service(
            "dynamodb",
            ("GetItem", "PutItem", "Query", "Scan", "DeleteItem", "BatchGetItem", "UpdateItem"),
            ("Get*", "Batch*", "*Item", "*"),
            ("DeleteItem", "Scan", "Delete*"),
            "table/",
            ("orders", "orders-archive", "users", "sessions", "metrics"),
        ),
        Service(
            "sqs",
            ("SendMessage", "ReceiveMessage", "DeleteMessage", "GetQueueAttributes", "PurgeQueue"),
            ("*Message", "Get*", "*"),
            ("PurgeQueue", "DeleteMessage"),
            "",
            ("jobs", "jobs-dlq", "events", "billing"),
        ),
        Service(
            "sns",
            (
                "Publish",
                "Subscribe",
                "GetTopicAttributes",
                "ListSubscriptionsByTopic",
                "DeleteTopic",
            ),
            ("Get*", "List*", "*"),
            ("DeleteTopic", "Subscribe"),
            "",
            ("alerts", "deploys", "billing-events"),
        ),
        Service(
            "lambda",
            ("InvokeFunction", "GetFunction", "UpdateFunctionCode", "DeleteFunction", "ListTags"),
            ("Get*", "Invoke*", "*Function", "*"),
            ("DeleteFunction", "UpdateFunctionCode"),
            "function:",
            ("resize-images", "nightly-report", "auth-hook", "etl-loader"),
        ),
        Service(
            "kms",
            ("Decrypt", "Encrypt", "GenerateDataKey", "DescribeKey", "ScheduleKeyDeletion"),
            ("Describe*", "Generate*", "*crypt", "*"),
            ("ScheduleKeyDeletion", "Decrypt"),
            "key/",
            (
                "1f0e2c7a-5b1d-4d3e-9a57-0c1e2d3f4a5b",
                "7c2d9e41-3a8b-4f60-b1c2-d3e4f5a6b7c8",
                "c4e8a1b2-9d0f-4e3a-8b7c-6d5e4f3a2b1c",
            ),
        ),
        Service(
            "ec2",
            (
                "StartInstances",
                "StopInstances",
                "TerminateInstances",
                "RebootInstances",
                "CreateTags",
            ),
            ("Start*", "Stop*", "*Instances", "*"),
            ("TerminateInstances", "StopInstances"),
            "instance/",
            ("i-0a1b2c3d4e5f60718", "i-0f9e8d7c6b5a49382", "i-01234abcd5678ef90"),
        ),
        Service(
            "logs",
            (
                "CreateLogStream",
                "PutLogEvents",
                "GetLogEvents",
                "DeleteLogGroup",
                "FilterLogEvents",
            ),
            ("*LogEvents", "Create*", "Get*", "*"),
            ("DeleteLogGroup", "Delete*"),
            "log-group:",
            ("/app/web", "/app/worker", "/aws/lambda/etl-loader"),
        ),
    )


HOT_SERVICES = _hot_services()

#: Requested, but named by no statement: a principal asking for something it was never granted.
UNGRANTED_SERVICE = Service(
    "iam",
    ("GetUser", "ListAccessKeys", "CreateAccessKey"),
    ("Get*", "List*", "*"),
    ("CreateAccessKey",),
    "user/",
    ("bob", "deploy-bot"),
    regional=False,
)
REQUEST_SERVICES = (*HOT_SERVICES, UNGRANTED_SERVICE)

_COLD_PREFIXES = (
    "athena",
    "glue",
    "redshift",
    "rds",
    "elasticache",
    "es",
    "kinesis",
    "firehose",
    "states",
    "events",
    "cloudwatch",
    "cloudformation",
    "codebuild",
    "codecommit",
    "codepipeline",
    "codedeploy",
    "ecr",
    "ecs",
    "eks",
    "elasticloadbalancing",
    "autoscaling",
    "route53",
    "acm",
    "secretsmanager",
    "ssm",
    "organizations",
    "cognito-idp",
    "apigateway",
    "appsync",
    "batch",
    "sagemaker",
    "glacier",
    "backup",
    "elasticfilesystem",
    "fsx",
    "wafv2",
    "shield",
    "guardduty",
    "inspector2",
    "macie2",
    "config",
    "cloudtrail",
    "xray",
    "servicecatalog",
    "transfer",
    "datasync",
    "elasticmapreduce",
    "quicksight",
    "ses",
    "mobiletargeting",
    "mq",
    "kafka",
    "lakeformation",
    "ram",
    "emr-containers",
    "dms",
)
_COLD_VERBS = ("Get", "List", "Describe", "Create", "Update", "Delete", "Put", "Tag")
_COLD_NOUNS = ("Resource", "Configuration", "Policy", "Job", "Stream", "Endpoint", "Snapshot")


def _cold_services() -> tuple[Service, ...]:
    out = []
    for prefix in _COLD_PREFIXES:
        actions = tuple(f"{verb}{noun}" for verb in _COLD_VERBS for noun in _COLD_NOUNS)
        out.append(
            Service(
                prefix,
                actions,
                ("Get*", "List*", "Describe*", "*"),
                ("DeleteResource", "Delete*"),
                "resource/",
                ("alpha", "beta", "gamma", "prod-main", "prod-replica"),
            )
        )
    return tuple(out)


COLD_SERVICES = _cold_services()

#: Every distinct action the requests use.
REQUEST_ACTIONS = tuple(f"{s.prefix}:{a}" for s in REQUEST_SERVICES for a in s.actions)


def hot_count(size: int) -> int:
    """How many of ``size`` statements name a service the requests use."""
    return max(1, min(size, round(min(0.8 * size, 4 * math.sqrt(size)))))


def policy_count(size: int) -> int:
    """Ten managed policies (the AWS limit per principal) once there are enough statements."""
    return max(1, min(10, size // 10))


@dataclass
class _Generator:
    rng: random.Random
    sid_prefix: str
    sid: int = 0

    def resource_patterns(self, svc: Service, deny: bool) -> list[str]:
        name = self.rng.choice(svc.names)
        region = self.rng.choice(REGIONS)
        literal = svc.arn(name, region)
        stem = name.split("-")[0] if not svc.regional else name[: max(2, len(name) // 2)]
        choices = [literal, svc.arn(f"{stem}*", region)]
        if svc.regional:
            choices.append(svc.arn(name, "*"))
        else:
            choices.append(f"arn:aws:s3:::{stem}*/public/*")
        if not deny:
            choices.append(svc.arn("*", "*") if svc.regional else "arn:aws:s3:::*")
            choices.append("*")
        count = self.rng.choice((1, 1, 1, 2))
        return sorted(set(self.rng.choices(choices, weights=_weights(len(choices)), k=count)))

    def action_patterns(self, svc: Service, deny: bool) -> list[str]:
        pool_literal = svc.destructive if deny else svc.actions
        pool_wild = () if deny else svc.wildcards
        out: set[str] = set()
        for _ in range(self.rng.choice((1, 1, 2, 3))):
            if pool_wild and self.rng.random() < 0.4:
                out.add(f"{svc.prefix}:{self.rng.choice(pool_wild)}")
            else:
                out.add(f"{svc.prefix}:{self.rng.choice(pool_literal)}")
        return sorted(out)

    def condition(self) -> dict[str, dict[str, str | list[str]]] | None:
        if self.rng.random() >= 0.35:
            return None
        block: dict[str, str | list[str]] = {}
        for key in self.rng.sample(CONDITION_KEYS, self.rng.choice((1, 1, 2))):
            extra = self.rng.sample(key.others, self.rng.randint(0, 2))
            values = [key.good, *extra]
            self.rng.shuffle(values)
            block[key.name] = values[0] if len(values) == 1 else values
        return {"StringEquals": block}

    def statement(self, svc: Service, deny_share: float) -> dict[str, Any]:
        deny = self.rng.random() < deny_share
        self.sid += 1
        stmt: dict[str, Any] = {
            "Sid": f"{self.sid_prefix}{self.sid}",
            "Effect": "Deny" if deny else "Allow",
            "Action": _one_or_list(self.action_patterns(svc, deny)),
            "Resource": _one_or_list(self.resource_patterns(svc, deny)),
        }
        condition = self.condition()
        if condition is not None:
            stmt["Condition"] = condition
        return stmt


def _weights(n: int) -> list[float]:
    # Literal ARNs are the most common, "*" the least.
    return [4.0, 2.0, 2.0, 1.0, 0.5][:n]


def _one_or_list(items: list[str]) -> str | list[str]:
    return items[0] if len(items) == 1 else items


@dataclass
class Workload:
    """Policies for one principal plus the requests to ask about them."""

    size: int
    documents: list[Document]
    hot: int
    candidates: list[BenchRequest] = field(default_factory=list)

    @property
    def statements(self) -> int:
        return sum(len(d["Statement"]) for d in self.documents)

    @property
    def distinct_patterns(self) -> int:
        """Distinct action and resource patterns (moto compiles each into a regex)."""
        seen: set[str] = set()
        for document in self.documents:
            for statement in document["Statement"]:
                for key in ("Action", "NotAction", "Resource"):
                    value = statement.get(key, [])
                    seen.update([value] if isinstance(value, str) else value)
        return len(seen)

    def document_texts(self) -> list[str]:
        return [json.dumps(d, separators=(",", ":")) for d in self.documents]


@dataclass(frozen=True)
class BenchRequest:
    """One request, in the plain form every engine adapter starts from."""

    action: str
    resource: str
    context: dict[str, str]
    bad_key: str | None = None  # the condition key given a bad value, if any

    def as_simulate(self) -> dict[str, Any]:
        return {
            "action": self.action,
            "resource": self.resource,
            "principal": PRINCIPAL_ARN,
            "context": self.context,
        }


def good_context() -> dict[str, str]:
    ctx = {key.name: key.good for key in CONDITION_KEYS}
    ctx.update(EXTRA_CONTEXT)
    return ctx


def build_workload(size: int, hot: int | None = None, seed: int = 20240601) -> Workload:
    """``size`` statements over ``policy_count(size)`` policies, and the candidate requests.

    ``hot`` overrides ``hot_count(size)``: ``hot=size`` makes every statement name a service
    the requests use (the worst case for an engine that indexes by service); a small ``hot``
    with a large ``size`` adds nothing but statements that cannot apply.
    """
    hot = hot_count(size) if hot is None else min(hot, size)
    # Separate generators, so that principals with the same number of hot statements share
    # them exactly and differ only in their cold statements.
    hot_gen = _Generator(random.Random(seed * 1_009 + hot), "H")
    cold_gen = _Generator(random.Random(seed * 2_003 + size), "C")
    rng = random.Random(seed * 3_001 + size * 7 + hot)
    statements: list[dict[str, Any]] = []
    # Every principal with at least ten statements has this guard rail: nothing but reads on
    # the audit bucket (NotAction, so it is indexed under "any service").
    if size >= 10:
        statements.append(
            {
                "Sid": "AuditReadOnly",
                "Effect": "Deny",
                "NotAction": ["s3:Get*", "s3:List*"],
                "Resource": "arn:aws:s3:::audit-trail/*",
            }
        )
    while len(statements) < hot:
        svc = HOT_SERVICES[len(statements) % len(HOT_SERVICES)]
        statements.append(hot_gen.statement(svc, deny_share=0.15))
    while len(statements) < size:
        svc = cold_gen.rng.choice(COLD_SERVICES)
        statements.append(cold_gen.statement(svc, deny_share=0.1))
    rng.shuffle(statements)
    documents = [
        {"Version": "2012-10-17", "Statement": chunk}
        for chunk in _split(statements, policy_count(size))
    ]
    return Workload(size, documents, hot, candidate_requests())


def _split(items: Sequence[dict[str, Any]], parts: int) -> list[list[dict[str, Any]]]:
    per = math.ceil(len(items) / parts)
    return [list(items[i : i + per]) for i in range(0, len(items), per)]


def candidate_requests() -> list[BenchRequest]:
    """Every requested action against every resource of its service, in the good context, plus
    the same with one condition key given a bad value."""
    out: list[BenchRequest] = []
    good = good_context()
    for svc in REQUEST_SERVICES:
        for action in svc.actions:
            for resource in svc.resources():
                out.append(BenchRequest(f"{svc.prefix}:{action}", resource, good))
                for key in CONDITION_KEYS:
                    bad = dict(good)
                    bad[key.name] = key.bad
                    out.append(BenchRequest(f"{svc.prefix}:{action}", resource, bad, key.name))
    return out
