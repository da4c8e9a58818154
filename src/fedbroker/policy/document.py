"""Compiled policy documents: what the parser produces and the evaluator reads.

Everything a decision needs is worked out once here (matchers, parsed condition values,
service prefixes for the index) so evaluating a statement does no parsing.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field

from fedbroker.policy.conditions import Condition, ConditionMiss, ContextValue
from fedbroker.policy.kinds import PolicyKind
from fedbroker.policy.principals import PrincipalSpec, Via
from fedbroker.policy.request import Request
from fedbroker.policy.variables import Template
from fedbroker.policy.wildcard import Matcher

VERSION_2012 = "2012-10-17"
VERSION_2008 = "2008-10-17"


@dataclass(eq=False, slots=True)
class ResourceSpec:
    """``Resource`` or ``NotResource`` patterns; variables resolved per request."""

    patterns: tuple[str, ...]
    static: Matcher
    templates: tuple[Template, ...]
    _cache: dict[str, re.Pattern[str]] = field(default_factory=dict)

    def match(self, resource: str, context: Mapping[str, ContextValue]) -> bool:
        if self.static(resource):
            return True
        for template in self.templates:
            regex_text = template.resolve_regex(context)
            if regex_text is None:  # a variable with no value matches no resource
                continue
            regex = self._cache.get(regex_text)
            if regex is None:
                if len(self._cache) > 256:
                    self._cache.clear()
                regex = re.compile(regex_text, re.DOTALL)
                self._cache[regex_text] = regex
            if regex.fullmatch(resource) is not None:
                return True
        return False


@dataclass(eq=False, slots=True)
class Statement:
    index: int  # zero-based position in the document
    sid: str | None
    allow: bool
    actions: tuple[str, ...]
    not_action: bool
    action_match: Matcher  # called with the lower-cased action
    services: frozenset[str] | None  # literal service prefixes, None if it can match any
    resources: ResourceSpec | None
    not_resource: bool
    principal: PrincipalSpec | None
    not_principal: bool
    conditions: tuple[Condition, ...]
    policy: Policy | None = None

    @property
    def effect(self) -> str:
        return "Allow" if self.allow else "Deny"

    def applies(
        self, request: Request, has_boundary: bool = False
    ) -> tuple[bool, Via | None, ConditionMiss | None]:
        """Whether the statement applies to the request, assuming its action already matched.

        Returns ``(applies, how the principal matched, the first condition that failed)``; the
        miss is only reported when action, resource and principal all matched, since that is
        the near-miss people want explained.
        """
        context = request.context
        resources = self.resources
        if (
            resources is not None
            and resources.match(request.resource, context) == self.not_resource
        ):
            return False, None, None
        via: Via | None = None
        if self.principal is not None:
            if self.not_principal:
                # AWS: a Deny with NotPrincipal always denies a principal that has a
                # permissions boundary, whatever NotPrincipal lists.
                if not has_boundary and self.principal.excludes(request.principal):
                    return False, None, None
                via = Via.EVERYONE
            else:
                via = self.principal.match(request.principal)
                if via is None:
                    return False, None, None
        # Conditions are AND-ed: one that is plainly false decides, whatever the order. A
        # condition that cannot be evaluated fails closed: an Allow does not allow, a Deny
        # still denies.
        error: ConditionMiss | None = None
        for condition in self.conditions:
            miss = condition.evaluate(context)
            if miss is None:
                continue
            if miss.error is None:
                return False, via, miss
            error = error or miss
        if error is not None:
            return not self.allow, via, error
        return True, via, None

    def describe(self) -> str:
        where = f"statement {self.index + 1}"
        if self.sid:
            where += f" ({self.sid})"
        if self.policy is not None:
            where += f" of `{self.policy.name}`"
        return where


@dataclass(eq=False, slots=True)
class Policy:
    """A parsed, validated and compiled policy document."""

    name: str
    kind: PolicyKind
    version: str
    id: str | None
    statements: tuple[Statement, ...]
    document: Mapping[str, object]

    @property
    def variables_enabled(self) -> bool:
        return self.version == VERSION_2012
