"""The base of the admin and subscriber request bodies: JSON types exactly as the OpenAPI
document says them.

pydantic's lax mode took "5" and 5.0 for the integer 5, 1 for true and 0 for
1970-01-01T00:00:00Z, so a body the schema calls invalid was accepted; here each field
takes its own JSON type only, and a time is an ISO 8601 string with a UTC offset.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import AwareDatetime, BaseModel, BeforeValidator, ConfigDict, Field


class StrictBody(BaseModel):
    model_config = ConfigDict(strict=True)


def _text_only(value: object) -> object:
    if value is not None and not isinstance(value, str):
        raise ValueError("must be an ISO 8601 time string, e.g. 2025-04-09T15:25:54Z")
    return value


# Strict validation takes only datetime objects, and a JSON body has none: a string is
# parsed (in lax mode), anything else refused.
IsoTime = Annotated[AwareDatetime, BeforeValidator(_text_only), Field(strict=False)]
