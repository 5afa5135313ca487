"""The admins' command menu: each admin's private chat gets everyone's commands and the admins'
(BotCommandScopeChat), in that admin's language; an id gone from ADMIN_IDS since the last start
loses it; Telegram refusing any of it never stops the bot."""

from __future__ import annotations

import json

from bot.app import ADMIN_MENU_FLAG
from bot.menu import ADMIN_MENU
from testkit.bot import ADMIN_ID, make_settings
from testkit.chat import Person
from testkit.fakes.telegram import FakeTelegram
from tests.app.test_e2e_web import webhook_settings

OTHER_ADMIN = 1001


def chat_key(chat_id: int) -> tuple[str, str]:
    """FakeTelegram.commands' key of one chat's menu, for every language."""
    return json.dumps({"type": "chat", "chat_id": chat_id}, sort_keys=True), ""


def chat_menu(tg: FakeTelegram, chat_id: int) -> dict[str, str] | None:
    """The menu set for one chat, as command -> description; None: none."""
    commands = tg.commands.get(chat_key(chat_id))
    return None if commands is None else {c["command"]: c["description"] for c in commands}


def deleted_menus(tg: FakeTelegram) -> list[int]:
    return [c.params["scope"]["chat_id"] for c in tg.calls_of("deleteMyCommands") if c.ok]


async def test_an_admin_gets_the_admin_commands_and_nobody_else_does(tg, bot):
    menu = chat_menu(tg, ADMIN_ID)
    assert menu is not None
    assert list(menu) == [name for name, _ in ADMIN_MENU]
    assert menu["topup"] == "Add credits to a user" and menu["image"] == "Create a picture"
    assert chat_menu(tg, 42) is None
    scoped = [c for c in tg.calls_of("setMyCommands") if c.params.get("scope", {}).get("type") == "chat"]
    assert [c.params["scope"]["chat_id"] for c in scoped] == [ADMIN_ID]
    everyones = [commands for key, commands in tg.commands.items() if key != chat_key(ADMIN_ID)]
    assert len(everyones) == 3  # default, en, ru
    for commands in everyones:
        assert "topup" not in {c["command"] for c in commands}


async def test_the_admin_menu_is_in_the_admins_language(tg, kie, tmp_path, start_bot, store):
    first = await start_bot(make_settings(tmp_path, tg, kie))
    admin = Person(tg, ADMIN_ID, "Admin", language="ru")  # known to the bot, Telegram in Russian
    admin.say("/start")
    await admin.told("Привет")
    await first.stop()

    await start_bot(make_settings(tmp_path, tg, kie))
    menu = chat_menu(tg, ADMIN_ID)
    assert menu is not None
    assert menu["topup"] == "Начислить кредиты пользователю" and menu["image"] == "Создать картинку"
    await store.set_language(ADMIN_ID, "en")  # a choice made in the bot wins over Telegram's
    await start_bot(make_settings(tmp_path, tg, kie))
    assert chat_menu(tg, ADMIN_ID)["topup"] == "Add credits to a user"


async def test_an_id_removed_from_admin_ids_loses_the_admin_menu(tg, kie, tmp_path, start_bot,
                                                                 store):
    both = f"{ADMIN_ID},{OTHER_ADMIN}"
    first = await start_bot(make_settings(tmp_path, tg, kie, admin_ids=both))
    assert chat_menu(tg, OTHER_ADMIN) is not None and deleted_menus(tg) == []
    await first.stop()

    second = await start_bot(make_settings(tmp_path, tg, kie))  # OTHER_ADMIN is no admin now
    assert chat_menu(tg, OTHER_ADMIN) is None and deleted_menus(tg) == [OTHER_ADMIN]
    assert chat_menu(tg, ADMIN_ID) is not None
    assert await store.get_flag(ADMIN_MENU_FLAG) == str(ADMIN_ID)
    await second.stop()

    await start_bot(make_settings(tmp_path, tg, kie, admin_ids=""))  # nobody: nothing remembered
    assert deleted_menus(tg) == [OTHER_ADMIN, ADMIN_ID]
    assert await store.get_flag(ADMIN_MENU_FLAG) is None


async def test_a_delete_telegram_did_not_take_is_tried_again_at_the_next_start(
        tg, kie, tmp_path, start_bot):
    first = await start_bot(make_settings(tmp_path, tg, kie, admin_ids=f"{ADMIN_ID},{OTHER_ADMIN}"))
    await first.stop()
    tg.fail_next("deleteMyCommands", error_code=502)
    second = await start_bot(make_settings(tmp_path, tg, kie))
    assert chat_menu(tg, OTHER_ADMIN) is not None  # still there
    await second.stop()

    await start_bot(make_settings(tmp_path, tg, kie))
    assert chat_menu(tg, OTHER_ADMIN) is None
    assert deleted_menus(tg) == [OTHER_ADMIN]


async def test_a_refused_menu_does_not_stop_the_bot_nor_the_other_menus(tg, kie, tmp_path,
                                                                         start_bot, caplog):
    tg.fail_next("setMyCommands", error_code=502)  # everyone's default menu
    tg.fail_next("setMyCommands", error_code=429, retry_after=5,
                 when=lambda p: p.get("scope", {}).get("chat_id") == ADMIN_ID)
    await start_bot(make_settings(tmp_path, tg, kie, admin_ids=f"{ADMIN_ID},{OTHER_ADMIN}"))
    assert chat_menu(tg, ADMIN_ID) is None and chat_menu(tg, OTHER_ADMIN) is not None
    assert (json.dumps({"type": "default"}, sort_keys=True), "ru") in tg.commands
    refused = [r.getMessage() for r in caplog.records if "was not set" in r.getMessage()]
    assert len(refused) == 2 and f"admins' menu of {ADMIN_ID}" in refused[1], refused
    alice = Person(tg, 42, "Alice")
    alice.say("/start")
    await alice.told("Hi")


async def test_the_admin_menu_is_set_in_webhook_mode_too(tg, kie, tmp_path, start_bot):
    await start_bot(webhook_settings(tmp_path, tg, kie))
    assert tg.calls_of("getUpdates") == []
    assert (chat_menu(tg, ADMIN_ID) or {}).get("topup") == "Add credits to a user"
