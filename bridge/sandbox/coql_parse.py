"""The COQL subset the sandbox understands (zoho.md §4.2, reconciliation.md C9). Pure.

`select f1, f2 from Module [where <criteria>] [order by f [asc|desc], ...]
[limit N [offset M] | limit M, N]`, where criteria combine `field op value` with `and`,
`or` and parentheses; `op` is `=`, `!=`, `>`, `>=`, `<`, `<=`. That covers the keyset
form `(Modified_Time > 'T') or (Modified_Time = 'T' and id > X)` with an upper bound
`and Modified_Time <= 'U'`. Datetimes are quoted ISO-8601 with an offset; ids compare as
numbers. Anything else is `SYNTAX_ERROR` (or `INVALID_QUERY` for a bad value).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from bridge.sandbox.model import CrmRecord

# At most 2,000 rows per call, 50 select fields, 100,000 rows via OFFSET, 25 criteria,
# 10 ORDER BY fields (zoho.md §4.2; reconciliation.md C9).
MAX_LIMIT = 2000
MAX_FIELDS = 50
MAX_OFFSET = 100_000
MAX_CRITERIA = 25
MAX_ORDER = 10
DEFAULT_LIMIT = 200
_TOKEN = re.compile(
    r"\s*(?:(?P<str>'(?:[^'\\]|\\.)*')|(?P<op>>=|<=|!=|=|>|<)|(?P<punct>[(),])"
    r"|(?P<num>\d+)|(?P<word>[A-Za-z_][\w.$]*))"
)
_TIMES = {"Modified_Time": "modified", "Created_Time": "created"}
Predicate = Callable[[CrmRecord], bool]


class CoqlError(Exception):
    """A refused query; `code` and `message` as Zoho answers them (HTTP 400)."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


@dataclass
class Query:
    """A parsed COQL query."""

    fields: list[str]
    module: str
    where: Predicate | None = None
    order: list[tuple[str, bool]] = field(default_factory=list)  # (field, descending)
    limit: int = DEFAULT_LIMIT
    offset: int = 0

    def sort_key(self, name: str) -> Callable[[CrmRecord], Any]:
        """Sort by `name`: times and ids as themselves, other fields as text."""
        if name in _TIMES or name == "id":
            return lambda record: value_of(record, name)
        return lambda record: str(value_of(record, name) or "")


def value_of(record: CrmRecord, name: str) -> Any:
    """A record's value for a COQL field name: times as datetimes, ids as numbers."""
    if name in _TIMES:
        return getattr(record, _TIMES[name])
    if name == "id":
        return int(record.id)
    return record.fields.get(name)


def parse(text: str) -> Query:
    """Parse one query, or raise `CoqlError`."""
    return _Parser(text).query()


class _Parser:
    def __init__(self, text: str) -> None:
        self.tokens: list[tuple[str, str]] = []
        pos, text = 0, text.strip()
        while pos < len(text):
            match = _TOKEN.match(text, pos)
            if match is None or match.end() == pos:
                raise CoqlError("SYNTAX_ERROR", "error occurred while parsing the query")
            kind = match.lastgroup or ""
            self.tokens.append((kind, match[kind]))
            pos = match.end()
        self.at = 0
        self.criteria = 0

    def peek(self) -> tuple[str, str] | None:
        return self.tokens[self.at] if self.at < len(self.tokens) else None

    def take(self, kind: str) -> str:
        token = self.peek()
        if token is None or token[0] != kind:
            raise CoqlError("SYNTAX_ERROR", "error occurred while parsing the query")
        self.at += 1
        return token[1]

    def keyword(self, word: str) -> bool:
        token = self.peek()
        if token is not None and token[0] == "word" and token[1].lower() == word:
            self.at += 1
            return True
        return False

    def punct(self, mark: str) -> bool:
        if self.peek() == ("punct", mark):
            self.at += 1
            return True
        return False

    def expect(self, word: str) -> None:
        if not self.keyword(word):
            raise CoqlError("SYNTAX_ERROR", f"expected {word.upper()}")

    def query(self) -> Query:
        self.expect("select")
        fields = [self.take("word")]
        while self.punct(","):
            fields.append(self.take("word"))
        if len(fields) > MAX_FIELDS:
            raise CoqlError("LIMIT_EXCEEDED", f"at most {MAX_FIELDS} fields can be selected")
        self.expect("from")
        query = Query(fields, self.take("word"))
        if self.keyword("where"):
            query.where = self.any_of()
            if self.criteria > MAX_CRITERIA:
                raise CoqlError("LIMIT_EXCEEDED", f"at most {MAX_CRITERIA} criteria")
        if self.keyword("order"):
            self.expect("by")
            query.order = [self.order_item()]
            while self.punct(","):
                query.order.append(self.order_item())
            if len(query.order) > MAX_ORDER:
                raise CoqlError("LIMIT_EXCEEDED", f"at most {MAX_ORDER} order by fields")
        if self.keyword("limit"):
            query.limit = int(self.take("num"))
            if self.punct(","):
                # "limit offset, count": COQL's other spelling (UNCERTAIN: not in our notes).
                query.offset, query.limit = query.limit, int(self.take("num"))
            elif self.keyword("offset"):
                query.offset = int(self.take("num"))
        if self.peek() is not None:
            raise CoqlError("SYNTAX_ERROR", "error occurred while parsing the query")
        if query.limit > MAX_LIMIT or query.offset + query.limit > MAX_OFFSET:
            raise CoqlError("LIMIT_EXCEEDED", "limit exceeded")
        return query

    def order_item(self) -> tuple[str, bool]:
        name = self.take("word")
        if self.keyword("desc"):
            return name, True
        self.keyword("asc")
        return name, False

    def any_of(self) -> Predicate:
        parts = [self.all_of()]
        while self.keyword("or"):
            parts.append(self.all_of())
        return parts[0] if len(parts) == 1 else (lambda r: any(p(r) for p in parts))

    def all_of(self) -> Predicate:
        parts = [self.atom()]
        while self.keyword("and"):
            parts.append(self.atom())
        return parts[0] if len(parts) == 1 else (lambda r: all(p(r) for p in parts))

    def atom(self) -> Predicate:
        if self.punct("("):
            inner = self.any_of()
            if not self.punct(")"):
                raise CoqlError("SYNTAX_ERROR", "unbalanced parentheses")
            return inner
        name = self.take("word")
        op = self.take("op")
        token = self.peek()
        if token is None or token[0] not in ("str", "num"):
            raise CoqlError("SYNTAX_ERROR", "expected a value")
        self.at += 1
        self.criteria += 1
        return _compare(name, op, _literal(name, token))


def _literal(name: str, token: tuple[str, str]) -> Any:
    kind, raw = token
    text = raw[1:-1].replace("\\'", "'") if kind == "str" else raw
    if name in _TIMES:
        try:
            when = datetime.fromisoformat(text)
        except ValueError:
            raise CoqlError("INVALID_QUERY", f"invalid value for {name}") from None
        if when.tzinfo is None:
            raise CoqlError("INVALID_QUERY", f"{name} needs an offset")
        return when
    if name == "id":
        if not text.isdigit():
            raise CoqlError("INVALID_QUERY", "invalid value for id")
        return int(text)
    return text


_OPS: dict[str, Callable[[Any, Any], bool]] = {
    "=": lambda a, b: a == b,
    "!=": lambda a, b: a != b,
    ">": lambda a, b: a > b,
    ">=": lambda a, b: a >= b,
    "<": lambda a, b: a < b,
    "<=": lambda a, b: a <= b,
}


def _compare(name: str, op: str, value: Any) -> Predicate:
    test = _OPS[op]

    def predicate(record: CrmRecord) -> bool:
        have = value_of(record, name)
        if have is None:
            return False
        if not isinstance(value, (datetime, int)):
            have = str(have)
        return test(have, value)

    return predicate
