"""Invites and promo codes without a bot: what a /start payload asks for, what an admin's new
code says, and REFERRAL_JOIN_BONUS / REFERRAL_PERCENT as the runtime contract has them."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from bot.config import Settings, describe_error
from bot.services.accounts import UsageError
from bot.services.growth import NewPromo, StartLink, parse_new_promo, parse_start, promo_code

GOOD = {"bot_token": "123456:growth-test", "kie_api_key": "growth-test-key"}


@pytest.mark.parametrize("payload, link", [
    ("ref_ab12cd34ef", StartLink("invite", "ab12cd34ef")),
    ("ref_AB12", StartLink("invite", "AB12")),
    ("promo_spring-24_x", StartLink("promo", "spring-24_x")),
    (" promo_SPRING ", StartLink("promo", "SPRING")),
    ("ref_", None), ("promo_", None), ("ref_a-b", None), ("ref_" + "a" * 33, None),
    ("promo_" + "A" * 33, None), ("promo_<b>", None), ("promo_ab cd", None), ("", None),
    (None, None), ("hello", None), ("REF_abc", None),
])
def test_a_start_payload_is_an_invite_a_promo_code_or_nothing(payload: str | None,
                                                              link: StartLink | None) -> None:
    assert parse_start(payload) == link


def test_promo_codes_are_one_case_and_a_narrow_alphabet() -> None:
    assert promo_code("Spring_24-x", is_admin=False) == "SPRING_24-X"
    for token in ("a" * 33, "<b>x</b>", "ключ", "a.b", "٧"):
        with pytest.raises(UsageError):
            promo_code(token, is_admin=False)


@pytest.mark.parametrize("tokens, new", [
    (["spring", "50"], NewPromo("SPRING", 50, None, None)),
    (["spring", "50", "0"], NewPromo("SPRING", 50, None, None)),
    (["spring", "50", "100"], NewPromo("SPRING", 50, 100, None)),
    (["spring", "50", "0", "7"], NewPromo("SPRING", 50, None, 7)),
])
def test_a_new_code_is_its_name_credits_uses_and_days(tokens: list[str], new: NewPromo) -> None:
    assert parse_new_promo(tokens) == new
    assert new.expires_at(1000.0) == (None if new.days is None else 1000.0 + new.days * 86400)


@pytest.mark.parametrize("tokens", [
    [], ["spring"], ["off", "5"], ["LIST", "5"], ["spring", "0"], ["spring", "1000001"],
    ["spring", "5", "1000001"], ["spring", "5", "1", "0"], ["spring", "5", "1", "3651"],
    ["spring", "5", "-1"], ["spring", "５"], ["spring", "5", "1", "2", "3"],
])
def test_a_new_code_used_wrongly_is_refused_with_the_usage(tokens: list[str]) -> None:
    with pytest.raises(UsageError) as refused:
        parse_new_promo(tokens)
    assert "/promo add SPRING 50 100 7" in refused.value.usage


def test_the_settings_and_their_defaults() -> None:
    defaults = Settings(_env_file=None, **GOOD).growth  # type: ignore[arg-type]
    assert (defaults.join_bonus, defaults.referral_percent) == (0, 10)
    chosen = Settings(_env_file=None, referral_join_bonus="25", referral_percent="0",
                      **GOOD).growth  # type: ignore[arg-type]
    assert (chosen.join_bonus, chosen.referral_percent) == (25, 0)
    for name, value in (("referral_percent", "101"), ("referral_join_bonus", "-1"),
                        ("referral_percent", "ten")):
        with pytest.raises(ValidationError) as error:
            Settings(_env_file=None, **{name: value}, **GOOD)  # type: ignore[arg-type]
        assert describe_error(error.value).startswith(
            f"Configuration error: {name.upper()} is invalid")
