"""An envelope's JSON text written straight from an events row's stored values.

`build_envelope` and `json.dumps` cost several times what reading the row does (a
`StoredEvent`, enums, a datetime made and formatted, `data` decoded and encoded again);
here the row's texts are placed into the envelope as they are, and only strings that
need escaping go through `json.dumps`. The document is the one `build_envelope` gives, keys
in the same order (tests/test_read_paths.py compares them); `data` keeps its stored spacing.
"""

from __future__ import annotations

import json
import re
from typing import Any

from bridge.domain.envelope import SPECVERSION
from bridge.domain.events import Operation, Origin, Product

# Printable ASCII but `"` and `\`: such a string is its own JSON body.
_PLAIN = re.compile(r"[ !#-\[\]-~]*\Z").match
_PRODUCTS = frozenset(p.value for p in Product)
_OPERATIONS = frozenset(o.value for o in Operation)
_ORIGINS = frozenset(o.value for o in Origin)
_STORED_TIME = len("2024-06-11 14:25:53.625000")


_CRM, _RECONCILIATION = Product.CRM.value, Origin.RECONCILIATION.value


def _quoted(value: str) -> str:
    return f'"{value}"'


def _string(value: str) -> str:
    return f'"{value}"' if _PLAIN(value) else json.dumps(value, ensure_ascii=False)


def envelope_text(row: Any) -> str | None:
    """The envelope of a row (seq, id, product, source, module, operation, record_id,
    occurred_at as stored text, origin, data as stored text, miss_cause, collapsed), or
    None when a value is one the domain does not know or a time is not in the stored
    layout: `build_envelope` decides those (and refuses what it cannot read)."""
    (seq, event_id, product, source, module, operation, record_id, occurred, origin, data,
     miss_cause, collapsed) = row  # fmt: skip
    if (
        product not in _PRODUCTS
        or operation not in _OPERATIONS
        or origin not in _ORIGINS
        or not isinstance(occurred, str)
        or len(occurred) != _STORED_TIME
    ):
        return None
    # One check for the usual row, whose strings need no escaping at all.
    plain = _PLAIN(f"{event_id}{source}{module}{record_id}") is not None
    q = _quoted if plain else _string
    kind = (
        f'"com.zoho.crm.record.{operation}"'
        if product == _CRM
        else q(f"com.zoho.books.{module.lower()}.{operation}")
    )
    extra = ""
    if origin == _RECONCILIATION:
        if miss_cause is not None:
            extra += f',"zohomisscause":{_string(miss_cause)}'
        if collapsed is not None:
            extra += f',"zohocollapsed":{"true" if collapsed else "false"}'
    return (
        f'{{"specversion":"{SPECVERSION}","id":{q(event_id)},'
        f'"source":{q(f"zoho-bridge/{product}/{source}")},"type":{kind},'
        f'"subject":{q(f"{module}/{record_id}")},'
        f'"time":"{occurred[:10]}T{occurred[11:23]}Z","datacontenttype":"application/json",'
        f'"zohomodule":{q(module)},"zohooperation":"{operation}",'
        f'"zohorecordid":{q(record_id)},"zohoorigin":"{origin}","bridgeseq":{seq}{extra},'
        f'"data":{"null" if data is None else data}}}'
    )
