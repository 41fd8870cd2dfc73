from __future__ import annotations

import base64
import hashlib
import hmac
from datetime import UTC, datetime, timedelta

from bridge.domain import books_signature
from bridge.domain.credentials import (
    ChannelToken,
    matches_any,
    new_token,
    token_digest,
    valid_digests,
)
from bridge.domain.redaction import (
    REDACTED,
    redact_headers,
    redact_mapping,
    redact_query,
    scrub_body,
)
from tests.support import SAMPLES

SECRET = "Secret0123456789"


def test_billing_example_signing_string() -> None:
    # Zoho Billing's documented example (zoho.md §3.3).
    params = [("subscription_id", "90343"), ("name", "basic")]
    body = b'{"created_date":"2019-03-06","event_id":"5675"}'
    assert books_signature.signing_string(params, body) == (
        b'namebasicsubscription_id90343{"created_date":"2019-03-06","event_id":"5675"}'
    )


def test_signature_is_hmac_sha256_and_accepted_as_hex_or_base64() -> None:
    params = [("token", "t"), ("event", "created")]
    body = b'{"invoice":{"invoice_id":"1"}}'
    digest = hmac.new(SECRET.encode(), b"eventcreatedtokent" + body, hashlib.sha256).digest()
    assert books_signature.sign_hex(SECRET, params, body) == digest.hex()
    for presented in (
        digest.hex(),
        digest.hex().upper(),
        base64.b64encode(digest).decode(),
        base64.b64encode(digest).decode().rstrip("="),
    ):
        assert books_signature.verify(presented, [SECRET], params, body)


def test_signature_rejects_tampering_and_junk() -> None:
    params = [("a", "1")]
    body = b"{}"
    good = books_signature.sign_hex(SECRET, params, body)
    assert not books_signature.verify(good, [SECRET], params, b'{"x":1}')
    assert not books_signature.verify(good, [SECRET], [("a", "2")], body)
    assert not books_signature.verify(good, ["OtherSecret12345"], params, body)
    for junk in (None, "", "zz", "t=1,v=abc", "=" * 44, "a" * 300):
        assert not books_signature.verify(junk, [SECRET], params, body)


def test_signature_with_either_of_two_secrets_during_rotation() -> None:
    body = b"{}"
    new = books_signature.sign_hex("NewSecret12345", [], body)
    assert books_signature.verify(new, [SECRET, "NewSecret12345"], [], body)


def test_tokens_match_by_digest_among_several() -> None:
    digests = [token_digest("first-token-123"), token_digest("second-token-456")]
    assert matches_any("second-token-456", digests)
    assert not matches_any("second-token-45", digests)
    assert not matches_any("", digests)
    assert not matches_any("first-token-123", [])


def test_rotated_out_token_expires_after_its_grace() -> None:
    now = datetime(2026, 1, 1, tzinfo=UTC)
    tokens = [ChannelToken("old", now + timedelta(minutes=5)), ChannelToken("new")]
    assert valid_digests(tokens, now) == ["old", "new"]
    assert valid_digests(tokens, now + timedelta(minutes=5)) == ["new"]


def test_new_tokens_fit_zoho_crm() -> None:
    tokens = {new_token() for _ in range(50)}
    assert len(tokens) == 50
    assert all(len(t) == 40 for t in tokens)
    assert len(new_token(50)) == 50


def test_headers_and_query_are_redacted() -> None:
    headers = redact_headers(
        [
            ("Authorization", "Bearer x"),
            ("X-Bridge-Token", "t"),
            ("X-Zoho-Webhook-Signature", "s"),
            ("X-Custom-Auth-Key", "k"),
            ("Content-Type", "application/json"),
            ("X-Multi", "a"),
            ("x-multi", "b"),
        ]
    )
    assert headers == {
        "authorization": REDACTED,
        "x-bridge-token": REDACTED,
        "x-zoho-webhook-signature": REDACTED,
        "x-custom-auth-key": REDACTED,
        "content-type": "application/json",
        "x-multi": "a, b",
    }
    assert redact_query("token=abc&event=created&api_key=zz") == (
        "token=%5Bredacted%5D&event=created&api_key=%5Bredacted%5D"
    )
    assert redact_mapping({"authorization": "x", "k": "v"}) == {"authorization": REDACTED, "k": "v"}


def test_bodies_are_scrubbed_of_tokens_in_json_forms_and_given_values() -> None:
    body = b'{"token":"crm-tok\\"en-1","query_params":{"authToken":"q1"},"ids":["1"]}'
    scrubbed = scrub_body(body)
    assert b"crm-tok" not in scrubbed and b"q1" not in scrubbed and b'"ids":["1"]' in scrubbed
    assert scrub_body(b"a=1&secret=s3cr3t&b=2") == b"a=1&secret=%5Bredacted%5D&b=2"
    assert b"VerySecretValue" not in scrub_body(b"x VerySecretValue y", ["VerySecretValue"])
    assert scrub_body(b"abc", ["abc"]) == b"abc"  # too short to blank safely


def test_only_secret_named_members_and_fields_are_blanked() -> None:
    body = (
        b'{"Key" : "k1", "keyword": "kept1", "X_Auth_Id": "a\\"1", "note": "my token kept2",'
        b' "cookie":"c1", "nested": {"refresh_token": "r1"}, "ids": ["token"], "cut": "t",'
        b' "apiKey": "z1", "password": "p1'
    )
    scrubbed = scrub_body(body)
    for secret in (b"k1", b'a\\"1', b"c1", b"r1", b"z1", b"p1"):
        assert secret not in scrubbed, secret
    for kept in (b"kept1", b"my token kept2", b'["token"]', b'"cut": "t"'):
        assert kept in scrubbed, kept
    assert scrubbed.endswith(b'"password": "[redacted]')  # truncated: no closing quote
    form = scrub_body(b"x%20Token=t1&keys=kept&AUTH=a2&api_key=k2&plain=token")
    assert form == (
        b"x%20Token=%5Bredacted%5D&keys=kept&AUTH=%5Bredacted%5D&api_key=%5Bredacted%5D&plain=token"
    )
    invoice = (SAMPLES / "books-invoice.json").read_bytes()
    assert scrub_body(invoice) == invoice


def test_ulids_sort_in_creation_order_even_within_a_millisecond() -> None:
    from bridge.domain.ids import new_ulid

    now = datetime(2026, 1, 1, tzinfo=UTC)
    ids = [new_ulid(now) for _ in range(1000)]
    assert ids == sorted(ids) and len(set(ids)) == 1000
    assert all(len(i) == 26 for i in ids)
    later = new_ulid(now + timedelta(seconds=1))
    assert later > ids[-1]


def test_ulids_are_crockford_base32_of_time_and_random_bits() -> None:
    import random

    from bridge.domain.ids import _encode_random, _encode_time

    def reference(value: int) -> str:  # 128 bits, five at a time from the top (ULID spec)
        return "".join(
            "0123456789ABCDEFGHJKMNPQRSTVWXYZ"[(value >> s) & 31] for s in range(125, -1, -5)
        )

    for _ in range(2000):
        millis, rand = random.getrandbits(48), random.getrandbits(80)
        assert _encode_time(millis) + _encode_random(rand) == reference((millis << 80) | rand)
    # Counting up within a millisecond (the encoded head is reused), across carries too.
    start = random.getrandbits(80) | 1023
    for rand in [*range(start - 1500, start + 1500), 2**80 - 2, 2**80 - 1, 0, 1]:
        assert _encode_random(rand) == reference(rand)[-16:]
    assert _encode_time(0) + _encode_random(0) == "0" * 26
    assert _encode_time(2**48 - 1) + _encode_random(2**80 - 1) == "7" + "Z" * 25
