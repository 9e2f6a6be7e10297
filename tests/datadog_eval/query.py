"""A parser for the part of Datadog's monitor query language the pack's monitors use.

Anything else is refused with `UnknownConstruct`, naming it: a monitor that uses a construct
this evaluator does not implement must fail the test, not be evaluated wrongly.

    monitor   := head ":" expr CMP NUMBER
    head      := TIMEAGG "(" WINDOW ")"                      avg min max sum percentile
               | "change(" TIMEAGG "(" WINDOW ")," WINDOW ")"
    expr      := term (("+" | "-") term)*
    term      := factor (("*" | "/") factor)*
    factor    := NUMBER | "(" expr ")" | FUNC "(" expr ("," arg)* ")" | metric
    FUNC      := diff | clamp_min | clamp_max | outliers
    metric    := SPACEAGG ":" NAME "{" filter "}" [" by {" tag ("," tag)* "}"] ["." MOD "()"]
    SPACEAGG  := avg | min | max | sum | pNN (distributions)
    MOD       := as_count | as_rate
    filter    := "*" | or ; or := and ("OR" and)* ; and := not (("AND" | ",") not)*
    not       := ["!" | "NOT "] atom ; atom := "(" or ")" | KEY ":" VALUE[*]

    service check: "NAME".over("TAG", ...).by("TAG", ...).last(N).count_by_status()
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Optional, Tuple, Union


class UnknownConstruct(Exception):
    """The query uses something the evaluator does not implement (the message names it)."""


TIME_AGGREGATORS = ("avg", "min", "max", "sum", "percentile")
SPACE_AGGREGATORS = ("avg", "min", "max", "sum")
FUNCTIONS = ("diff", "clamp_min", "clamp_max", "outliers")
MODIFIERS = ("as_count", "as_rate")
COMPARATORS = (">=", "<=", ">", "<")
PERCENTILE = re.compile(r"p(\d{1,2}(?:\.\d+)?)$")


# -- filters ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class TagMatch:
    key: str
    value: str  # may end with `*`

    def matches(self, tags) -> bool:
        if self.value.endswith("*"):
            prefix = f"{self.key}:{self.value[:-1]}"
            return any(tag.startswith(prefix) for tag in tags)
        return f"{self.key}:{self.value}" in tags


@dataclass(frozen=True)
class Not:
    inner: object

    def matches(self, tags) -> bool:
        return not self.inner.matches(tags)


@dataclass(frozen=True)
class All:
    parts: tuple

    def matches(self, tags) -> bool:
        return all(p.matches(tags) for p in self.parts)


@dataclass(frozen=True)
class Any_:
    parts: tuple

    def matches(self, tags) -> bool:
        return any(p.matches(tags) for p in self.parts)


EVERYTHING = All(())


# -- expressions -----------------------------------------------------------------------------
@dataclass(frozen=True)
class Metric:
    space: str  # avg|min|max|sum, or pNN for a distribution
    name: str
    filter: object
    by: Tuple[str, ...]
    modifier: Optional[str]  # as_count | as_rate | None

    @property
    def percentile(self) -> Optional[float]:
        m = PERCENTILE.match(self.space)
        return float(m.group(1)) / 100.0 if m else None


@dataclass(frozen=True)
class Number:
    value: float


@dataclass(frozen=True)
class Func:
    name: str
    arg: object
    params: tuple


@dataclass(frozen=True)
class BinOp:
    op: str
    left: object
    right: object


Expr = Union[Metric, Number, Func, BinOp]


@dataclass(frozen=True)
class MetricMonitor:
    time_agg: str
    window: int  # seconds
    change_shift: Optional[int]  # seconds, for change(...) monitors
    expr: Expr
    comparator: str
    threshold: float


@dataclass(frozen=True)
class ServiceCheckMonitor:
    check: str
    over: Tuple[str, ...]
    by: Tuple[str, ...]
    last: int


def parse_window(text: str) -> int:
    m = re.fullmatch(r"last_(\d+)([mhdw])", text.strip())
    if not m:
        raise UnknownConstruct(f"time window {text!r} (expected last_<N>m|h|d|w)")
    return int(m.group(1)) * {"m": 60, "h": 3600, "d": 86400, "w": 604800}[m.group(2)]


class _Parser:
    def __init__(self, text: str):
        self.text = text
        self.pos = 0

    # low-level helpers
    def ws(self):
        while self.pos < len(self.text) and self.text[self.pos].isspace():
            self.pos += 1

    def peek(self, s: str) -> bool:
        self.ws()
        return self.text.startswith(s, self.pos)

    def take(self, s: str):
        self.ws()
        if not self.text.startswith(s, self.pos):
            raise UnknownConstruct(f"expected {s!r} at {self.text[self.pos:self.pos + 30]!r} in {self.text!r}")
        self.pos += len(s)

    def word(self) -> str:
        self.ws()
        m = re.compile(r"[A-Za-z_][A-Za-z0-9_.]*").match(self.text, self.pos)
        if not m:
            raise UnknownConstruct(f"expected a name at {self.text[self.pos:self.pos + 30]!r} in {self.text!r}")
        self.pos = m.end()
        return m.group(0)

    def number(self) -> float:
        self.ws()
        m = re.compile(r"-?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?").match(self.text, self.pos)
        if not m:
            raise UnknownConstruct(f"expected a number at {self.text[self.pos:self.pos + 30]!r} in {self.text!r}")
        self.pos = m.end()
        return float(m.group(0))

    # monitor
    def monitor(self) -> MetricMonitor:
        head = self.word()
        shift = None
        if head == "change":
            self.take("(")
            time_agg = self.word()
            self.take("(")
            window = self._window_until(")")
            self.take(")")
            self.take(",")
            shift = self._window_until(")")
            self.take(")")
        else:
            time_agg = head
            self.take("(")
            window = self._window_until(")")
            self.take(")")
        if time_agg not in TIME_AGGREGATORS:
            raise UnknownConstruct(f"time aggregator {time_agg!r}")
        self.take(":")
        expr = self.expr()
        self.ws()
        for comparator in COMPARATORS:
            if self.text.startswith(comparator, self.pos):
                self.pos += len(comparator)
                break
        else:
            raise UnknownConstruct(f"comparator at {self.text[self.pos:]!r}")
        threshold = self.number()
        self.ws()
        if self.pos != len(self.text):
            raise UnknownConstruct(f"trailing text {self.text[self.pos:]!r}")
        return MetricMonitor(time_agg, window, shift, expr, comparator, threshold)

    def _window_until(self, end: str) -> int:
        """A `last_<N><unit>` window, read up to the next `,` or `end`."""
        self.ws()
        m = re.compile(r"[^,%s]*" % re.escape(end)).match(self.text, self.pos)
        self.pos = m.end()
        return parse_window(m.group(0))

    # expressions
    def expr(self):
        left = self.term()
        while True:
            self.ws()
            if self.pos < len(self.text) and self.text[self.pos] in "+-":
                op = self.text[self.pos]
                self.pos += 1
                left = BinOp(op, left, self.term())
            else:
                return left

    def term(self):
        left = self.factor()
        while True:
            self.ws()
            if self.pos < len(self.text) and self.text[self.pos] in "*/":
                op = self.text[self.pos]
                self.pos += 1
                left = BinOp(op, left, self.factor())
            else:
                return left

    def factor(self):
        self.ws()
        if self.peek("("):
            self.take("(")
            inner = self.expr()
            self.take(")")
            return inner
        if re.compile(r"-?\d").match(self.text, self.pos):
            return Number(self.number())
        name = self.word()
        self.ws()
        if self.peek("("):
            return self.function(name)
        if self.peek(":"):
            return self.metric(name)
        raise UnknownConstruct(f"{name!r} is neither a function nor a metric query")

    def function(self, name: str):
        if name not in FUNCTIONS:
            raise UnknownConstruct(f"function {name}()")
        self.take("(")
        arg = self.expr()
        params = []
        while self.peek(","):
            self.take(",")
            self.ws()
            if self.text[self.pos] in "'\"":
                quote = self.text[self.pos]
                end = self.text.index(quote, self.pos + 1)
                params.append(self.text[self.pos + 1:end])
                self.pos = end + 1
            else:
                params.append(self.number())
        self.take(")")
        expected = {"diff": 0, "clamp_min": 1, "clamp_max": 1, "outliers": 3}[name]
        if len(params) != expected:
            raise UnknownConstruct(f"{name}() with {len(params)} parameters")
        if name == "outliers" and params[0] != "MAD":
            raise UnknownConstruct(f"outliers() algorithm {params[0]!r} (only 'MAD' is implemented)")
        return Func(name, arg, tuple(params))

    def metric(self, space: str) -> Metric:
        if space not in SPACE_AGGREGATORS and not PERCENTILE.match(space):
            raise UnknownConstruct(f"space aggregator {space!r}")
        self.take(":")
        self.ws()
        m = re.compile(r"[A-Za-z][A-Za-z0-9_.]*").match(self.text, self.pos)
        if not m:
            raise UnknownConstruct(f"metric name at {self.text[self.pos:]!r}")
        name = m.group(0)
        self.pos = m.end()
        self.take("{")
        filt = self.filter_or()
        self.take("}")
        by: Tuple[str, ...] = ()
        if self.peek("by"):
            self.take("by")
            self.take("{")
            tags = []
            while True:
                tags.append(self.word())
                if self.peek(","):
                    self.take(",")
                    continue
                break
            self.take("}")
            by = tuple(tags)
        modifier = None
        if self.peek("."):
            self.take(".")
            modifier = self.word()
            if modifier not in MODIFIERS:
                raise UnknownConstruct(f"modifier .{modifier}()")
            self.take("(")
            self.take(")")
        if self.peek("."):
            raise UnknownConstruct(f"a second modifier at {self.text[self.pos:]!r}")
        return Metric(space, name, filt, by, modifier)

    # filters
    def filter_or(self):
        parts = [self.filter_and()]
        while self.peek("OR "):
            self.take("OR ")
            parts.append(self.filter_and())
        return parts[0] if len(parts) == 1 else Any_(tuple(parts))

    def filter_and(self):
        parts = [self.filter_not()]
        while self.peek("AND ") or self.peek(","):
            self.take("AND " if self.peek("AND ") else ",")
            parts.append(self.filter_not())
        return parts[0] if len(parts) == 1 else All(tuple(parts))

    def filter_not(self):
        if self.peek("!"):
            self.take("!")
            return Not(self.filter_atom())
        if self.peek("NOT "):
            self.take("NOT ")
            return Not(self.filter_atom())
        return self.filter_atom()

    def filter_atom(self):
        if self.peek("("):
            self.take("(")
            inner = self.filter_or()
            self.take(")")
            return inner
        if self.peek("*"):
            self.take("*")
            return EVERYTHING
        self.ws()
        m = re.compile(r"[^\s(){},!]+").match(self.text, self.pos)
        if not m or ":" not in m.group(0):
            raise UnknownConstruct(f"tag filter at {self.text[self.pos:self.pos + 30]!r}")
        self.pos = m.end()
        key, _, value = m.group(0).partition(":")
        if "*" in value[:-1] or "*" in key:
            raise UnknownConstruct(f"wildcard inside {m.group(0)!r} (only a trailing * is implemented)")
        return TagMatch(key, value)


_SERVICE_CHECK = re.compile(
    r'"(?P<check>[^"]+)"\.over\((?P<over>[^)]*)\)(?:\.by\((?P<by>[^)]*)\))?\.last\((?P<last>\d+)\)\.count_by_status\(\)$'
)


def _strings(text: str) -> Tuple[str, ...]:
    return tuple(s for s in re.findall(r'"([^"]*)"', text or ""))


def parse_service_check(query: str) -> ServiceCheckMonitor:
    m = _SERVICE_CHECK.match(query.strip())
    if not m:
        raise UnknownConstruct(f"service check query {query!r}")
    return ServiceCheckMonitor(m.group("check"), _strings(m.group("over")), _strings(m.group("by")), int(m.group("last")))


def parse_monitor(query: str) -> MetricMonitor:
    return _Parser(query).monitor()
