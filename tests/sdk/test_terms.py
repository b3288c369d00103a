"""How people write models, licence terms and owners' shares: what each form means, and TermsError for the rest.

Amounts are whole AIC (1 AIC = 10**9 base units) unless written with `units`; durations are seconds
or with an s/m/h/d/w suffix; royalties and shares are percentages or basis points (10,000 = 100%).
"""

from __future__ import annotations

import pytest

from aichain_node.terms import BPS, ModelRef, Offer, TermsError, parse_bps, parse_duration, parse_owners
from core.units import UNIT

A = "0x" + "11" * 20
B = "0x" + "22" * 20
C = "0x" + "33" * 20
A_BYTES, B_BYTES, C_BYTES = bytes([0x11]) * 20, bytes([0x22]) * 20, bytes([0x33]) * 20


def test_one_aic_is_ten_to_the_nine_units() -> None:
    assert UNIT == 10**9
    assert BPS == 10_000


# --- ModelRef -------------------------------------------------------------------------------------


def test_model_ref_without_version_means_the_latest() -> None:
    ref = ModelRef.parse("net")
    assert ref == ModelRef("net", None)
    assert ref.version is None
    assert str(ref) == "net"


@pytest.mark.parametrize(
    ("text", "name", "version"), [("net@3", "net", 3), ("net@1", "net", 1), ("resnet-50@12", "resnet-50", 12)]
)
def test_model_ref_with_version(text: str, name: str, version: int) -> None:
    ref = ModelRef.parse(text)
    assert (ref.name, ref.version) == (name, version)
    assert str(ref) == text


def test_model_ref_splits_at_the_last_at_sign() -> None:
    assert ModelRef.parse("org@net@2") == ModelRef("org@net", 2)


@pytest.mark.parametrize("text", ["", "@3", "@"])
def test_model_ref_without_a_name_is_refused(text: str) -> None:
    with pytest.raises(TermsError, match="NAME or NAME@VERSION"):
        ModelRef.parse(text)


@pytest.mark.parametrize("text", ["net@0", "net@-1", "net@x", "net@1.5", "net@ 2", "net@v2"])
def test_model_ref_version_must_be_a_number_from_one(text: str) -> None:
    with pytest.raises(TermsError, match="a version is a number from 1"):
        ModelRef.parse(text)


def test_model_ref_version_in_non_ascii_digits_raises_terms_error() -> None:
    # "²".isdigit() is True but int("²") fails: the error must still be a TermsError.
    with pytest.raises(TermsError, match="version"):
        ModelRef.parse("net@²")


# --- durations ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("0", 0),
        ("45", 45),
        ("30s", 30),
        ("15m", 900),
        ("12h", 43_200),
        ("30d", 2_592_000),
        ("2w", 1_209_600),
        (" 30D ", 2_592_000),
        ("12 h", 43_200),
    ],
)
def test_parse_duration(text: str, seconds: int) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "d", "30x", "1.5h", "-1", "30dd", "h12", "30 days", "1e3"])
def test_malformed_duration_is_refused(text: str) -> None:
    with pytest.raises(TermsError, match="duration"):
        parse_duration(text)


# --- basis points ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "bps"),
    [
        ("10%", 1000),
        ("0.5%", 50),
        ("100%", 10_000),
        ("0%", 0),
        ("12.34%", 1234),
        ("1000bps", 1000),
        ("1000", 1000),
        (" 25 % ", 2500),
        ("10000BPS", 10_000),
    ],
)
def test_parse_bps(text: str, bps: int) -> None:
    assert parse_bps(text) == bps


@pytest.mark.parametrize("text", ["", "%", "bps", "ten%", "10.5bps", "1/2", "nan%"])
def test_unreadable_royalty_is_refused(text: str) -> None:
    with pytest.raises(TermsError, match="write a percentage"):
        parse_bps(text)


@pytest.mark.parametrize("text", ["100.01%", "101%", "10001bps", "10001", "-1%", "-1bps"])
def test_royalty_outside_zero_to_one_hundred_percent_is_refused(text: str) -> None:
    with pytest.raises(TermsError, match="between 0% and 100%"):
        parse_bps(text)


def test_infinite_royalty_raises_terms_error() -> None:
    # float("inf") parses, but round(inf) raises OverflowError: it must still be a TermsError.
    with pytest.raises(TermsError, match="royalty"):
        parse_bps("inf%")


# --- offers ---------------------------------------------------------------------------------------


def test_empty_offer_is_free_perpetual_unmetered_unlimited_and_open() -> None:
    assert Offer.parse("") == Offer()
    assert Offer.parse(" , ,") == Offer()
    o = Offer()
    assert (o.price, o.duration_s, o.per_use_price, o.max_licensees, o.allow, o.upstream_bps) == (0, 0, 0, 0, (), 0)


def test_offer_with_every_term() -> None:
    offer = Offer.parse(f"price=10,duration=30d,per-use=0.01,royalty-upstream=10%,max=100,allow={A}+{B}")
    assert offer.price == 10 * UNIT
    assert offer.duration_s == 30 * 86_400
    assert offer.per_use_price == 10**7
    assert offer.upstream_bps == 1000
    assert offer.max_licensees == 100
    assert offer.allow == (A_BYTES, B_BYTES)


@pytest.mark.parametrize(
    ("text", "price"),
    [
        ("price=10", 10 * UNIT),
        ("price=0.5", UNIT // 2),
        ("price=12.5AIC", 12 * UNIT + UNIT // 2),
        ("price=1000units", 1000),
        ("price=0.000000001", 1),
        ("price=0", 0),
    ],
)
def test_offer_price_is_in_whole_aic_or_base_units(text: str, price: int) -> None:
    assert Offer.parse(text).price == price


def test_offer_price_cannot_group_thousands_because_commas_separate_terms() -> None:
    with pytest.raises(TermsError, match="'000': write key=value"):
        Offer.parse("price=1,000")


def test_offer_keys_ignore_case_spaces_and_underscores_and_have_aliases() -> None:
    offer = Offer.parse(f" PRICE = 2 , per_use_price=0.5, Upstream=1000bps, max-licensees=3, ALLOW={C}")
    assert offer == Offer(price=2 * UNIT, per_use_price=UNIT // 2, upstream_bps=1000, max_licensees=3, allow=(C_BYTES,))
    assert Offer.parse("per-use=1units").per_use_price == 1
    assert Offer.parse("max=0").max_licensees == 0


def test_offer_allow_list_skips_empty_entries() -> None:
    assert Offer.parse(f"allow={A}++{B}+").allow == (A_BYTES, B_BYTES)


@pytest.mark.parametrize(
    ("text", "names"),
    [
        ("price", "key=value"),
        ("price=ten", "price 'ten'"),
        ("price=1.0000000001", "price"),
        ("price=-1", "price"),
        ("per-use=abc", "per-use price 'abc'"),
        ("duration=forever", "duration 'forever'"),
        ("royalty-upstream=200%", "royalty '200%'"),
        ("max=lots", "max licensees 'lots'"),
        ("max=-1", "max licensees"),
        ("max=1.5", "max licensees"),
        ("colour=blue", "unknown offer term 'colour'"),
        ("price=1,bogus=2", "unknown offer term 'bogus'"),
    ],
)
def test_malformed_offer_term_raises_terms_error_naming_it(text: str, names: str) -> None:
    with pytest.raises(TermsError) as info:
        Offer.parse(text)
    assert names in str(info.value)


def test_offer_allow_list_with_a_bad_address_raises_terms_error() -> None:
    with pytest.raises(TermsError, match="allow-list"):
        Offer.parse(f"allow={A}+0xbad")


def test_offer_max_in_non_ascii_digits_raises_terms_error() -> None:
    with pytest.raises(TermsError, match="max licensees"):
        Offer.parse("max=²")


# --- owners ---------------------------------------------------------------------------------------


def test_owner_shares_in_percent_summing_to_one_hundred() -> None:
    assert parse_owners([f"{A}:60%", f"{B}:40%"]) == [(A_BYTES, 6000), (B_BYTES, 4000)]


def test_owner_shares_in_basis_points_keep_their_order() -> None:
    assert parse_owners([f"{B}:2500bps", f"{A}:7500"]) == [(B_BYTES, 2500), (A_BYTES, 7500)]


def test_single_bare_owner_gets_everything() -> None:
    assert parse_owners([A]) == [(A_BYTES, BPS)]


def test_bare_owners_share_the_rest_equally_the_first_taking_the_remainder() -> None:
    assert parse_owners([A, B, C]) == [(A_BYTES, 3334), (B_BYTES, 3333), (C_BYTES, 3333)]
    assert parse_owners([f"{A}:50%", B, C]) == [(A_BYTES, 5000), (B_BYTES, 2500), (C_BYTES, 2500)]


def test_owner_address_is_case_insensitive() -> None:
    assert parse_owners(["0x" + "AB" * 20]) == [(bytes([0xAB]) * 20, BPS)]


@pytest.mark.parametrize(
    "specs",
    [[], [f"{A}:60%"], [f"{A}:60%", f"{B}:60%"], [f"{A}:0%", f"{B}:100%"], [f"{A}:100%", B], [f"{A}:99.99%"]],
)
def test_owner_shares_must_each_be_positive_and_sum_to_one_hundred_percent(specs: list[str]) -> None:
    with pytest.raises(TermsError, match="together 100%"):
        parse_owners(specs)


def test_owner_share_that_is_not_a_percentage_raises_terms_error() -> None:
    with pytest.raises(TermsError, match="'abc'"):
        parse_owners([f"{A}:abc"])


@pytest.mark.parametrize("spec", ["0xbad:50%", "11" * 20 + ":100%", "0x" + "zz" * 20])
def test_owner_with_a_bad_address_raises_terms_error_naming_the_owner(spec: str) -> None:
    with pytest.raises(TermsError, match="owner"):
        parse_owners([spec])
