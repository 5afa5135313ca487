"""The commands, each with its one-line description: the menu Telegram shows beside the message
field (set by bot.app at start) and what /help can list. Everyone's, and the admins' on top."""

from __future__ import annotations

from bot.i18n import N_

COMMANDS = (
    ("image", N_("Create a picture")),
    ("video", N_("Create a video")),
    ("music", N_("Create music or speech")),
    ("models", N_("Models and prices")),
    ("balance", N_("Your credits")),
    ("history", N_("Your last generations")),
    ("language", N_("Change the language")),
    ("help", N_("What the bot can do")),
    ("buy", N_("Buy credits with Telegram Stars")),
    ("paysupport", N_("Help with payments")),
    ("invite", N_("Your invite link")),
    ("promo", N_("Redeem a promo code")),
    ("start", N_("Start")),
)

# DESIGN.md "Commands", those for admins (bot/handlers/admin.py, /refund in payments.py, the
# admins' /promo forms in growth.py, /dashboard in dashboard.py, /broadcast in broadcast.py).
ADMIN_COMMANDS = (
    ("topup", N_("Add credits to a user")),
    ("user", N_("A user's balance, ledger and generations")),
    ("ban", N_("Ban a user")),
    ("unban", N_("Lift a ban")),
    ("stats", N_("Users, generations and credits")),
    ("kie", N_("The Kie.ai account's credits")),
    ("refund", N_("Refund a Stars purchase")),
    ("price", N_("Change a model's price")),
    ("model", N_("Hide or show a model")),
    ("promo", N_("Promo codes: add, off, list")),
    ("broadcast", N_("Send a message to everyone, or to some")),
    ("dashboard", N_("A one-time link to the web dashboard")),
)

# An admin's menu: each command once, where both lists name it (/promo) with the admins' line.
ADMIN_MENU = tuple({**dict(COMMANDS), **dict(ADMIN_COMMANDS)}.items())
