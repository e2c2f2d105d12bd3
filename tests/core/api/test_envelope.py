"""Reading responses: success, permanent errors, transient errors, and what each error says."""

from __future__ import annotations

import json
import pickle

import pytest

from genviral_provider.core.api.envelope import PostsPage, parse_retry_after, read_envelope
from genviral_provider.exceptions import GenviralAPIError, GenviralAuthError, GenviralRetryableError

REQUEST = "GET /analytics/summary/posts?limit=100"


def envelope(**fields: object) -> bytes:
    return json.dumps(fields).encode()


def test_success_returns_data() -> None:
    body = envelope(ok=True, code=200, message="Analytics posts retrieved", data={"posts": []})
    assert read_envelope(200, {}, body, request=REQUEST) == {"posts": []}


def test_bad_request_is_permanent_and_carries_status_code_and_message() -> None:
    body = envelope(ok=False, code=400, message="Invalid sortBy", error_code="invalid_query")
    with pytest.raises(GenviralAPIError) as caught:
        read_envelope(400, {}, body, request=REQUEST)
    error = caught.value
    assert not isinstance(error, GenviralRetryableError)
    assert (error.status, error.error_code, error.message) == (400, "invalid_query", "Invalid sortBy")
    assert str(error) == f"Genviral API error on {REQUEST}: HTTP 400 invalid_query: Invalid sortBy"


@pytest.mark.parametrize(("status", "hint"), [(401, "API key"), (402, "subscription"), (403, "workspace")])
def test_auth_errors_say_what_to_check(status: int, hint: str) -> None:
    body = envelope(ok=False, code=status, message="nope", error_code="invalid_token")
    with pytest.raises(GenviralAuthError, match=hint):
        read_envelope(status, {}, body, request=REQUEST)


@pytest.mark.parametrize("status", [429, 500, 502, 503, 504])
def test_rate_limit_and_server_errors_are_retryable(status: int) -> None:
    with pytest.raises(GenviralRetryableError) as caught:
        read_envelope(status, {}, envelope(ok=False, code=status, message="busy"), request=REQUEST)
    assert caught.value.status == status


def test_retry_after_is_read_from_the_headers() -> None:
    with pytest.raises(GenviralRetryableError) as caught:
        read_envelope(429, {"Retry-After": "3"}, envelope(ok=False, message="slow down"), request=REQUEST)
    assert caught.value.retry_after == 3.0
    assert caught.value.is_rate_limited


@pytest.mark.parametrize("body", [b"<html>502 Bad Gateway</html>", b'{"ok": true, "data": {"po', b""])
def test_a_200_whose_body_is_not_json_is_retryable(body: bytes) -> None:
    with pytest.raises(GenviralRetryableError, match=r"not a JSON envelope|empty response body"):
        read_envelope(200, {}, body, request=REQUEST)


def test_error_without_envelope_quotes_the_body() -> None:
    with pytest.raises(GenviralAPIError, match="'Not Found'"):
        read_envelope(404, {}, b"Not Found", request=REQUEST)


def test_retry_after_accepts_an_http_date() -> None:
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:10 GMT", now=1445412480.0) == 10.0


def test_a_date_form_retry_after_is_read_against_the_servers_date_not_the_local_clock() -> None:
    server_date = "Wed, 21 Oct 2015 07:28:00 GMT"
    local_clock_a_day_ahead = 1445412480.0 + 86400
    wait = parse_retry_after("Wed, 21 Oct 2015 07:28:10 GMT", server_date=server_date, now=local_clock_a_day_ahead)
    assert wait == 10.0


def test_a_date_form_retry_after_without_a_readable_date_falls_back_to_the_local_clock() -> None:
    for server_date in (None, "", "yesterday"):
        assert parse_retry_after("Wed, 21 Oct 2015 07:28:10 GMT", server_date=server_date, now=1445412480.0) == 10.0


def test_a_date_form_retry_after_is_bounded_like_a_delay() -> None:
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:10 GMT", server_date="Thu, 22 Oct 2015 07:28:10 GMT") == 0.0
    assert parse_retry_after("Fri, 31 Dec 9999 23:59:59 GMT", server_date="Wed, 21 Oct 2015 07:28:10 GMT") == (
        pytest.approx(253402300799 - 1445412490)
    )


@pytest.mark.parametrize("code", [429, 503])
def test_an_ok_false_envelope_with_a_transient_code_inside_an_http_200_is_retryable(code: int) -> None:
    body = envelope(ok=False, code=code, message="busy", error_code="rate_limited" if code == 429 else None)
    with pytest.raises(GenviralRetryableError) as caught:
        read_envelope(200, {"Retry-After": "2"}, body, request=REQUEST)
    assert (caught.value.status, caught.value.retry_after, caught.value.is_rate_limited) == (code, 2.0, code == 429)
    assert f"ok:false envelope with code {code} inside an HTTP 200" in str(caught.value)


@pytest.mark.parametrize("fields", [{"code": 400}, {"code": "429"}, {"code": True}, {}])
def test_an_ok_false_envelope_inside_an_http_200_without_a_transient_code_stays_permanent(
    fields: dict[str, object],
) -> None:
    with pytest.raises(GenviralAPIError) as caught:
        read_envelope(200, {}, envelope(ok=False, message="no", **fields), request=REQUEST)
    assert not isinstance(caught.value, GenviralRetryableError) and caught.value.status == 200


def test_unreadable_retry_after_is_ignored() -> None:
    assert parse_retry_after("soon") is None
    assert parse_retry_after(None) is None


def test_errors_survive_pickling_with_their_fields() -> None:
    error = GenviralRetryableError(status=429, error_code="rate_limited", message="m", request=REQUEST, retry_after=2)
    copy = pickle.loads(pickle.dumps(error))
    assert (type(copy), copy.status, copy.retry_after, str(copy)) == (type(error), 429, 2, str(error))


def test_page_without_posts_list_is_retryable() -> None:
    with pytest.raises(GenviralRetryableError, match="'posts' is missing or null, not a list"):
        PostsPage.from_data({"items": []}, offset=0, request=REQUEST)


def test_page_without_has_more_derives_it_from_the_total() -> None:
    page = PostsPage.from_data({"posts": [{}] * 10, "totalCount": 25}, offset=10, request=REQUEST)
    assert page.has_more
