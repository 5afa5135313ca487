"""Chats that change under the bot: a group upgraded to a supergroup, the bot removed or blocked."""

from __future__ import annotations

from aiogram import F, Router
from aiogram.types import ChatMemberUpdated, Message

from bot.handlers.filters import on_loop
from bot.store import Store


async def migrated(message: Message, store: Store) -> None:
    """What is still to be shown in the old group follows it to the supergroup."""
    if message.migrate_to_chat_id is not None:
        await store.migrate_chat(message.chat.id, message.migrate_to_chat_id)


async def membership(event: ChatMemberUpdated, store: Store) -> None:
    """Removed from a group: the group is unreachable (its members may not be); blocked in a
    private chat: the person is. Added back or unblocked: reachable again."""
    reachable = event.new_chat_member.status not in ("left", "kicked")
    if event.chat.type == "private":
        await store.set_blocked(event.chat.id, not reachable)
    else:
        await store.set_chat_unreachable(event.chat.id, not reachable)


def make_router() -> Router:
    router = Router(name="chats")
    router.message.register(migrated, on_loop(F.migrate_to_chat_id))
    router.my_chat_member.register(membership)
    return router
