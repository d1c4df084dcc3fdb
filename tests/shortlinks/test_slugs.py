"""The pure rules: slugs, target URLs and UTM tags."""

from __future__ import annotations

import re

import pytest

from siyu.kit.errors import InvalidInput
from siyu.shortlinks.slugs import (
    CAMPAIGN_SLUG_LENGTH,
    RECIPIENT_SLUG_LENGTH,
    is_wellformed_slug,
    random_slug,
    validate_custom_slug,
    validate_target_url,
    validate_utm,
    with_utm,
)

BASE62 = re.compile(r"[0-9A-Za-z]+")


def test_random_slugs_are_base62_of_the_asked_length_and_differ() -> None:
    campaign = {random_slug(CAMPAIGN_SLUG_LENGTH) for _ in range(200)}
    recipient = {random_slug(RECIPIENT_SLUG_LENGTH) for _ in range(200)}
    assert {len(s) for s in campaign} == {7}
    assert {len(s) for s in recipient} == {12}
    assert all(BASE62.fullmatch(s) for s in campaign | recipient)
    assert len(campaign) == 200 and len(recipient) == 200
    # 12 base62 characters carry ~71 bits: far beyond guessing.
    assert RECIPIENT_SLUG_LENGTH * 5.954 > 60


@pytest.mark.parametrize("slug", ["abc", "Sale_2026-11", "a" * 32])
def test_custom_slugs_in_charset_and_length_are_accepted(slug: str) -> None:
    assert validate_custom_slug(slug) == slug
    assert is_wellformed_slug(slug)


@pytest.mark.parametrize("slug", ["ab", "a" * 33, "双十一", "a b", "a/b", "a.b", ""])
def test_malformed_custom_slugs_are_422_naming_slug(slug: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        validate_custom_slug(slug)
    assert caught.value.details["field"] == "slug"
    assert not is_wellformed_slug(slug)


def test_target_urls_are_http_or_https_and_normalised_for_the_location_header() -> None:
    assert validate_target_url(" https://shop.example.com/a?b=1#top ") == "https://shop.example.com/a?b=1#top"
    assert validate_target_url("HTTP://Example.com/x") == "http://Example.com/x"
    assert validate_target_url("https://shop.example.com/商品?q=礼盒") == (
        "https://shop.example.com/%E5%95%86%E5%93%81?q=%E7%A4%BC%E7%9B%92"
    )
    assert validate_target_url("https://例子.中国/a") == "https://xn--fsqu00a.xn--fiqs8s/a"


@pytest.mark.parametrize(
    "url",
    [
        "",
        "ftp://example.com/file",
        "javascript:alert(1)",
        "//example.com/a",
        "https://",
        "https://exa mple.com",
        "https://example.com:99999/",
        "https://[::1/",
        "https://example.com/" + "a" * 2000,
        "example.com/a",
    ],
)
def test_bad_target_urls_are_422_naming_target_url(url: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        validate_target_url(url)
    assert caught.value.details == {"field": "target_url"}


def test_a_url_of_exactly_2000_characters_is_accepted() -> None:
    url = "https://example.com/" + "a" * (2000 - len("https://example.com/"))
    assert validate_target_url(url) == url


def test_utm_tags_keep_the_five_keys_and_drop_empty_values() -> None:
    assert validate_utm({"utm_source": " sms ", "utm_term": "", "utm_campaign": "双11 大促"}) == {
        "utm_source": "sms",
        "utm_campaign": "双11 大促",
    }
    with pytest.raises(InvalidInput) as unknown:
        validate_utm({"utm_source": "sms", "ref": "x"})
    assert unknown.value.details == {"field": "utm.ref"}
    with pytest.raises(InvalidInput) as too_long:
        validate_utm({"utm_medium": "m" * 101})
    assert too_long.value.details == {"field": "utm.utm_medium"}


def test_utm_merge_appends_without_clobbering_existing_parameters() -> None:
    utm = {"utm_source": "sms", "utm_medium": "text", "utm_campaign": "双11"}
    assert with_utm("https://s.example.com/p", utm) == (
        "https://s.example.com/p?utm_source=sms&utm_medium=text&utm_campaign=%E5%8F%8C11"
    )
    assert with_utm("https://s.example.com/p?sku=42&utm_source=kol#buy", utm) == (
        "https://s.example.com/p?sku=42&utm_source=kol&utm_medium=text&utm_campaign=%E5%8F%8C11#buy"
    )
    assert with_utm("https://s.example.com/p?a=1", {}) == "https://s.example.com/p?a=1"
    assert (
        with_utm("https://s.example.com/p?utm_source=", {"utm_source": "sms"}) == "https://s.example.com/p?utm_source="
    )
