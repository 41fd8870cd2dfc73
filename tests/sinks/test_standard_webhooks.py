"""Standard Webhooks signing and verification, including the spec's own test vector."""

from __future__ import annotations

import base64

import pytest

from bridge.domain.standard_webhooks import (
    SignatureInvalid,
    SigningSecret,
    sign,
    signature_headers,
    verify,
)
from bridge.errors import InvalidInput, VerificationFailed

# From standard-webhooks/standard-webhooks, libraries/python/tests/test_webhooks.py
# (test_sign_function): the reference libraries in every language share this vector.
SPEC_SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
SPEC_ID = "msg_p5jXN8AQM9LWM0D4loKWxJek"
SPEC_TIMESTAMP = 1614265330
SPEC_BODY = b'{"test": 2432232314}'
SPEC_SIGNATURE = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="

OLD = SigningSecret.parse(SPEC_SECRET)
NEW = SigningSecret(bytes(range(32)))


def spec_headers(signature: str = SPEC_SIGNATURE) -> dict[str, str]:
    return {
        "webhook-id": SPEC_ID,
        "webhook-timestamp": str(SPEC_TIMESTAMP),
        "webhook-signature": signature,
    }


def test_signature_matches_the_spec_test_vector() -> None:
    assert sign([OLD], SPEC_ID, SPEC_TIMESTAMP, SPEC_BODY) == SPEC_SIGNATURE


def test_spec_vector_verifies() -> None:
    verify([OLD], spec_headers(), SPEC_BODY, now=SPEC_TIMESTAMP)


def test_secret_prefix_is_optional() -> None:
    assert SigningSecret.parse(SPEC_SECRET.removeprefix("whsec_")) == OLD
    assert SigningSecret.parse(OLD.serialize()) == OLD
    assert OLD.serialize() == SPEC_SECRET


def test_several_secrets_give_space_separated_signatures() -> None:
    header = sign([OLD, NEW], SPEC_ID, SPEC_TIMESTAMP, SPEC_BODY)
    first, second = header.split(" ")
    assert first == SPEC_SIGNATURE
    assert second.startswith("v1,")
    assert second != first


def test_rotation_either_secret_alone_verifies() -> None:
    headers = signature_headers([OLD, NEW], SPEC_ID, SPEC_TIMESTAMP, SPEC_BODY)
    verify([NEW], headers, SPEC_BODY, now=SPEC_TIMESTAMP)
    verify([OLD], headers, SPEC_BODY, now=SPEC_TIMESTAMP)


def test_unknown_versions_are_skipped_and_a_later_v1_counts() -> None:
    bogus = "v1,Ceo5qEr07ixe2NLpvHk3FH9bwy/WavXrAFQ/9tdO6mc="
    header = f"{bogus} v2,{SPEC_SIGNATURE[3:]} {SPEC_SIGNATURE}"
    verify([OLD], spec_headers(header), SPEC_BODY, now=SPEC_TIMESTAMP)
    with pytest.raises(SignatureInvalid):
        verify([OLD], spec_headers(f"v2,{SPEC_SIGNATURE[3:]}"), SPEC_BODY, now=SPEC_TIMESTAMP)


def test_header_names_are_case_insensitive() -> None:
    headers = {name.upper(): value for name, value in spec_headers().items()}
    verify([OLD], headers, SPEC_BODY, now=SPEC_TIMESTAMP)


@pytest.mark.parametrize(
    "tamper",
    [
        {"body": b'{"test": 2432232315}'},
        {"webhook-id": "msg_other"},
        {"webhook-timestamp": str(SPEC_TIMESTAMP + 1)},
        {"webhook-signature": "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OA="},
        {"webhook-signature": "v1,"},
        {"webhook-signature": "garbage"},
    ],
)
def test_any_change_fails_verification(tamper: dict[str, str | bytes]) -> None:
    headers = spec_headers()
    body = SPEC_BODY
    for key, value in tamper.items():
        if key == "body":
            assert isinstance(value, bytes)
            body = value
        else:
            assert isinstance(value, str)
            headers[key] = value
    now = SPEC_TIMESTAMP
    with pytest.raises(SignatureInvalid):
        verify([OLD], headers, body, now=now)


def test_wrong_secret_fails() -> None:
    with pytest.raises(VerificationFailed):
        verify([NEW], spec_headers(), SPEC_BODY, now=SPEC_TIMESTAMP)


@pytest.mark.parametrize("missing", ["webhook-id", "webhook-timestamp", "webhook-signature"])
def test_missing_header_fails(missing: str) -> None:
    headers = spec_headers()
    del headers[missing]
    with pytest.raises(SignatureInvalid, match="missing"):
        verify([OLD], headers, SPEC_BODY, now=SPEC_TIMESTAMP)


def test_non_integer_timestamp_fails() -> None:
    with pytest.raises(SignatureInvalid, match="integer"):
        verify([OLD], spec_headers() | {"webhook-timestamp": "soon"}, SPEC_BODY, now=0)


@pytest.mark.parametrize(("skew", "ok"), [(300, True), (-300, True), (301, False), (-301, False)])
def test_timestamp_tolerance_both_ways(skew: int, ok: bool) -> None:
    now = SPEC_TIMESTAMP + skew
    if ok:
        verify([OLD], spec_headers(), SPEC_BODY, now=now)
    else:
        with pytest.raises(SignatureInvalid, match="tolerance"):
            verify([OLD], spec_headers(), SPEC_BODY, now=now)


@pytest.mark.parametrize("text", ["whsec_not base64!", "whsec_" + "A" * 8, "whsec_" + "A" * 100])
def test_bad_secrets_are_refused(text: str) -> None:
    with pytest.raises(InvalidInput):
        SigningSecret.parse(text)


@pytest.mark.parametrize("msg_id", ["", "a.b", "a b"])
def test_ids_that_would_make_the_content_ambiguous_are_refused(msg_id: str) -> None:
    with pytest.raises(InvalidInput):
        sign([OLD], msg_id, SPEC_TIMESTAMP, SPEC_BODY)


def test_signing_needs_a_secret() -> None:
    with pytest.raises(InvalidInput):
        sign([], SPEC_ID, SPEC_TIMESTAMP, SPEC_BODY)


def test_secrets_never_print() -> None:
    key_text = base64.b64encode(OLD.key).decode()
    for shown in (repr(OLD), str(OLD), f"{OLD}", repr([OLD])):
        assert key_text not in shown
        assert "MfKQ9r8G" not in shown


def test_generated_secrets_are_random_and_valid() -> None:
    first, second = SigningSecret.generate(), SigningSecret.generate()
    assert first != second
    assert SigningSecret.parse(first.serialize()) == first
