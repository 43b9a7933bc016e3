"""Policy: who may do what with which data, for which purpose, and why.

Rules are read from the catalog directory (sections ``roles``, ``rules``, ``defaults``) so
they are versioned and reviewed with the catalog. Evaluation is first-match in file order,
like a firewall, so a reviewer reads the policy top to bottom:

- data that no dataset governs gets ``defaults.unlabeled`` (allow unless configured);
- labelled data gets the effect of the first rule whose conditions all hold;
- labelled data that no rule covers gets ``defaults.no_rule`` (deny unless configured);
- a permitting rule on a dataset that lists ``purposes`` also needs one of them declared
  (except for ``discover``: knowing a dataset exists needs no purpose).

Effects: ``allow``; ``redact`` (allowed, redacted by the column rules); ``justify`` (allowed
only with a written reason, which is recorded); ``deny``.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from importlib import resources
from typing import Any

from .catalog import Catalog, Dataset
from .catalog._yaml import LineDict, load_yaml
from .catalog.loader import NAME_RE, Reporter, Section, line_of
from .errors import Problem

ALLOW, REDACT, JUSTIFY, DENY = "allow", "redact", "justify", "deny"
EFFECTS = (ALLOW, REDACT, JUSTIFY, DENY)
#: how strict an effect is: the strictest of several decisions speaks for all of them
EFFECT_ORDER = {ALLOW: 0, REDACT: 1, JUSTIFY: 2, DENY: 3}
#: known actions; rules may name others (room for more), which is reported as a warning only
ACTIONS = ("read", "export", "download", "credential", "discover")
MIN_JUSTIFICATION = 10  # characters: a reason, not "ok"

RULE_KEYS = {
    "name", "description", "users", "groups", "roles", "datasets", "labels", "min_label",
    "max_label", "actions", "purposes", "require_purpose", "check_purpose", "effect", "message",
}


@dataclass(frozen=True)
class Principal:
    """Who is asking: a user, their groups (from the Hub or config) and the roles these map to."""

    user: str
    groups: frozenset[str] = frozenset()
    roles: frozenset[str] = frozenset()

    def to_dict(self) -> dict:
        return {"name": self.user, "groups": sorted(self.groups), "roles": sorted(self.roles)}


@dataclass(frozen=True)
class Rule:
    name: str
    effect: str
    users: tuple[str, ...] = ()
    groups: tuple[str, ...] = ()
    roles: tuple[str, ...] = ()
    datasets: tuple[str, ...] = ()
    labels: tuple[str, ...] = ()
    min_rank: int | None = None
    max_rank: int | None = None
    actions: tuple[str, ...] = ()
    purposes: tuple[str, ...] = ()
    require_purpose: bool = False
    check_purpose: bool = True
    message: str = ""
    file: str = ""
    line: int = 0

    def applies(self, who: Principal, ds: Dataset, action: str, purpose: str | None) -> bool:
        if self.actions and action not in self.actions:
            return False
        if (self.users or self.groups or self.roles) and not (
            _any_match(self.users, (who.user,)) or _any_match(self.groups, who.groups) or _any_match(self.roles, who.roles)
        ):
            return False
        if self.datasets and not any(fnmatch.fnmatchcase(ds.name, p) for p in self.datasets):
            return False
        if self.labels and ds.label.name not in self.labels:
            return False
        if self.min_rank is not None and ds.label.rank < self.min_rank:
            return False
        if self.max_rank is not None and ds.label.rank > self.max_rank:
            return False
        return not self.purposes or purpose in self.purposes


def _any_match(patterns: Iterable[str], values: Iterable[str]) -> bool:
    values = tuple(values)
    return any(p == "*" or p in values for p in patterns)


@dataclass(frozen=True)
class Decision:
    """The answer to one request, with the reasons a person can read and whom to ask."""

    effect: str  # allow | redact | justify | deny
    action: str
    user: str
    target: str | None = None
    dataset: str | None = None
    label: str | None = None
    reasons: tuple[str, ...] = ()
    rule: str | None = None
    ask: str | None = None  # the steward contact
    purpose: str | None = None
    justification: str | None = None
    permitted: bool = False
    columns: tuple[dict, ...] = ()  # column rules to apply on redact
    classify: bool = False  # ungoverned data the policy wants classified (proposal for a steward)

    def to_dict(self) -> dict:
        return {
            "effect": self.effect,
            "permitted": self.permitted,
            "action": self.action,
            "user": self.user,
            "target": self.target,
            "dataset": self.dataset,
            "label": self.label,
            "reasons": list(self.reasons),
            "rule": self.rule,
            "ask": self.ask,
            "purpose": self.purpose,
            "columns": list(self.columns),
            "classify": self.classify,
        }

    def message(self) -> str:
        """Who, what, why and who to ask: the text a researcher sees on a denial."""
        what = f"{self.dataset!r} ({self.label} data)" if self.dataset else str(self.target)
        text = f"{self.user} may not {self.action} {what}: " + " ".join(self.reasons)
        if self.ask:
            text += f" To ask for access, contact {self.ask}."
        return text


@dataclass
class Policy:
    rules: tuple[Rule, ...]
    role_members: Mapping[str, Mapping[str, tuple[str, ...]]]  # role -> {"users": .., "groups": ..}
    unlabeled: str = ALLOW
    no_rule: str = DENY
    classify_unlabeled: bool = False
    source: str = ""
    #: labels whose datasets only the guard service reads (defaults.brokered_labels; None: not
    #: set, the catalog's most sensitive label); a dataset's own ``access:`` overrides it, and
    #: without a service it does not apply
    brokered_labels: tuple[str, ...] | None = None
    warnings: list[Problem] = field(default_factory=list)

    def roles_for(self, user: str, groups: Iterable[str] = (), extra: Mapping[str, Mapping] | None = None) -> frozenset[str]:
        """The roles a user holds through the policy's role map (plus an admin's extra map)."""
        groups = frozenset(groups)
        roles = set()
        for table in (self.role_members, extra or {}):
            for role, members in table.items():
                if _any_match(members.get("users", ()), (user,)) or _any_match(members.get("groups", ()), groups):
                    roles.add(role)
        return frozenset(roles)

    def principal(self, user: str, groups: Iterable[str] = (), extra_roles: Mapping | None = None) -> Principal:
        groups = frozenset(groups)
        return Principal(user, groups, self.roles_for(user, groups, extra_roles))

    def decide(
        self,
        who: Principal,
        dataset: Dataset | None,
        action: str,
        *,
        target: str | None = None,
        purpose: str | None = None,
        justification: str | None = None,
    ) -> Decision:
        base = dict(action=action, user=who.user, target=target, purpose=purpose)
        if dataset is None:
            return _finish(
                Decision(effect=self.unlabeled, reasons=("no dataset in the catalog governs this target.",),
                         classify=self.classify_unlabeled and action == "read", **base),
                justification,
            )
        base.update(dataset=dataset.name, label=dataset.label.name, ask=str(dataset.steward) if dataset.steward else None)
        base["columns"] = tuple({"name": c.column, "entity": c.entity, "rule": c.rule} for c in dataset.columns)
        for rule in self.rules:
            if not rule.applies(who, dataset, action, purpose):
                continue
            reasons = [f"rule {rule.name!r} gives {rule.effect} for {action} of {dataset.label.name} data."]
            if rule.message:
                reasons.append(rule.message)
            effect = rule.effect
            # discovering that a dataset exists never needs a purpose; using it may
            if effect != DENY and rule.check_purpose and action != "discover":
                problem = _purpose_problem(dataset, purpose, rule.require_purpose)
                if problem:
                    effect, reasons = DENY, [problem]
            return _finish(Decision(effect=effect, reasons=tuple(reasons), rule=rule.name, **base), justification)
        reason = f"no policy rule allows {action} of {dataset.label.name} data for {who.user}."
        return _finish(Decision(effect=self.no_rule, reasons=(reason,), **base), justification)


def _purpose_problem(ds: Dataset, purpose: str | None, required: bool) -> str | None:
    if not ds.purposes and not required:
        return None
    allowed = ", ".join(ds.purposes) if ds.purposes else "any"
    if not purpose:
        return f"{ds.name!r} needs a declared purpose (%guard purpose NAME); allowed purposes: {allowed}."
    if ds.purposes and purpose not in ds.purposes:
        return f"purpose {purpose!r} is not allowed for {ds.name!r}; allowed purposes: {allowed}."
    return None


def _finish(decision: Decision, justification: str | None) -> Decision:
    """Work out `permitted`; a justify effect permits only with a real written reason."""
    if decision.effect in (ALLOW, REDACT):
        return replace(decision, permitted=True)
    if decision.effect == JUSTIFY:
        reason = (justification or "").strip()
        if len(reason) >= MIN_JUSTIFICATION:
            return replace(decision, permitted=True, justification=reason)
        need = "a written justification of at least %d characters is required." % MIN_JUSTIFICATION
        return replace(decision, permitted=False, reasons=(*decision.reasons, need))
    return replace(decision, permitted=False)


# -- building a policy from catalog sections -------------------------------------------------


def default_policy_sections(problems: list[Problem]) -> list[Section]:
    """The documented default policy shipped in the package (jupyter_guard/default_policy.yaml)."""
    path = resources.files("jupyter_guard").joinpath("default_policy.yaml")
    with resources.as_file(path) as real:
        data = load_yaml(real, problems)
    return [Section(str(real), key, value, data.line_of(key)) for key, value in data.items()]


def build_policy(sections: list[Section], catalog: Catalog, problems: list[Problem]) -> Policy:
    report = Reporter(problems)
    if not any(s.key == "rules" for s in sections):
        # no rules in the catalog directory: the shipped default policy, plus any roles given
        defaults = default_policy_sections(problems)
        sections = defaults + sections
    roles: dict[str, dict[str, tuple[str, ...]]] = {}
    for sec in (s for s in sections if s.key == "roles"):
        if not isinstance(sec.value, dict):
            report.add(sec.file, sec.line, "roles is a mapping: role name -> {users: [...], groups: [...]}")
            continue
        for role, members in sec.value.items():
            rline = line_of(sec.value, role, sec.line)
            members = members or {}
            if not isinstance(members, dict) or set(members) - {"users", "groups", "description"}:
                report.add(sec.file, rline, f"role {role!r}: expected users: [...] and/or groups: [...]")
                continue
            entry = {k: tuple(str(v) for v in (members.get(k) or ())) for k in ("users", "groups")}
            roles[str(role)] = entry  # a later definition (the catalog's) replaces the default's
    labels = {label.name: label for label in catalog.labels}
    settings: dict[str, Any] = {"unlabeled": ALLOW, "no_rule": DENY, "classify_unlabeled": False}
    brokered: tuple[str, ...] | None = None
    for sec in (s for s in sections if s.key == "defaults"):
        if not isinstance(sec.value, dict):
            report.add(sec.file, sec.line, "defaults is a mapping with unlabeled:, no_rule:, classify_unlabeled: "
                                           "and brokered_labels:")
            continue
        for key, value in sec.value.items():
            where = line_of(sec.value, key, sec.line)
            if key == "brokered_labels":
                if not isinstance(value, list) or not all(isinstance(v, str) and v in labels for v in value):
                    report.add(sec.file, where, "defaults.brokered_labels is a list of labels "
                                                f"({', '.join(labels)})")
                    continue
                brokered = tuple(value)
                continue
            if key == "classify_unlabeled":
                if not isinstance(value, bool):
                    report.add(sec.file, where, "defaults.classify_unlabeled must be true or false")
                    continue
            elif key not in settings or value not in EFFECTS:
                report.add(sec.file, where, f"defaults.{key}: expected unlabeled/no_rule set to one of {', '.join(EFFECTS)}")
                continue
            settings[key] = value
    rules: list[Rule] = []
    warnings: list[Problem] = []
    names: dict[str, str] = {}
    for sec in (s for s in sections if s.key == "rules"):
        if not isinstance(sec.value, list):
            report.add(sec.file, sec.line, "rules must be a list")
            continue
        for i, spec in enumerate(sec.value):
            rule = _build_rule(spec, sec.file, line_of(sec.value, i, sec.line), roles, labels, catalog, report, warnings)
            if rule is None:
                continue
            if rule.name in names:
                report.add(sec.file, rule.line, f"rule name {rule.name!r} is used twice (first at {names[rule.name]})")
                continue
            names[rule.name] = f"{rule.file}:{rule.line}"
            rules.append(rule)
    return Policy(tuple(rules), roles, settings["unlabeled"], settings["no_rule"], settings["classify_unlabeled"],
                  warnings=warnings, brokered_labels=brokered)


def _names(spec: Mapping, key: str, file: str, line: int, report: Reporter) -> tuple[str, ...]:
    value = spec.get(key)
    if value is None:
        return ()
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        report.add(file, line_of(spec, key, line), f"{key} must be a list of names")
        return ()
    return tuple(value)


def _build_rule(spec: Any, file: str, line: int, roles: Mapping, labels: Mapping, catalog: Catalog,
                report: Reporter, warnings: list[Problem]) -> Rule | None:
    if not isinstance(spec, (dict, LineDict)):
        report.add(file, line, "a rule is a mapping with name, effect and conditions")
        return None
    before = len(report.problems)
    for key in sorted(set(spec) - RULE_KEYS, key=str):
        report.add(file, line_of(spec, key, line), f"unknown rule field {key!r} (expected one of {', '.join(sorted(RULE_KEYS))})")
    name = spec.get("name")
    if not isinstance(name, str) or not NAME_RE.match(name):
        report.add(file, line_of(spec, "name", line), "rule needs a name (letters, digits, '_', '.', '-')")
    effect = spec.get("effect")
    if effect not in EFFECTS:
        report.add(file, line_of(spec, "effect", line), f"rule effect must be one of {', '.join(EFFECTS)} (got {effect!r})")
    fields = {k: _names(spec, k, file, line, report) for k in ("users", "groups", "roles", "datasets", "labels", "actions", "purposes")}
    for role in fields["roles"]:
        if role not in roles and role != "*":
            report.add(file, line_of(spec, "roles", line), f"unknown role {role!r} (roles: {', '.join(sorted(roles)) or 'none defined'})")
    for label in fields["labels"]:
        if label not in labels:
            report.add(file, line_of(spec, "labels", line), f"unknown label {label!r} (labels: {', '.join(labels)})")
    for pattern in fields["datasets"]:
        # a rule's `datasets` names datasets or data sources (sources are decided like datasets)
        if not any(fnmatch.fnmatchcase(n, pattern) for n in [*catalog.datasets, *catalog.sources]):
            warnings.append(Problem(file, line_of(spec, "datasets", line), f"no dataset or source matches {pattern!r}"))
    for action in fields["actions"]:
        if action not in ACTIONS:
            warnings.append(Problem(file, line_of(spec, "actions", line), f"action {action!r} is not one jupyter_guard checks today ({', '.join(ACTIONS)})"))
    ranks = {}
    for key in ("min_label", "max_label"):
        if key in spec:
            label = labels.get(spec[key])
            if label is None:
                report.add(file, line_of(spec, key, line), f"{key}: unknown label {spec[key]!r} (labels: {', '.join(labels)})")
            else:
                ranks[key] = label.rank
    flags = {}
    for key, default in (("require_purpose", False), ("check_purpose", True)):
        value = spec.get(key, default)
        if not isinstance(value, bool):
            report.add(file, line_of(spec, key, line), f"{key} must be true or false")
        flags[key] = bool(value)
    if len(report.problems) > before:
        return None
    return Rule(
        name=name, effect=effect, min_rank=ranks.get("min_label"), max_rank=ranks.get("max_label"),
        message=str(spec.get("message", "") or ""), file=file, line=line, **fields, **flags,
    )

