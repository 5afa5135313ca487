"""Rows as the rest of the bot sees them."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from enum import StrEnum
from typing import TYPE_CHECKING, Any, TypeVar

if TYPE_CHECKING:
    from _typeshed import DataclassInstance

    from bot.store.database import Row

RowT = TypeVar("RowT", bound="DataclassInstance")


class LedgerKind(StrEnum):
    GRANT = "grant"
    TOPUP = "topup"
    CHARGE = "charge"
    REFUND = "refund"
    PURCHASE = "purchase"                # credits bought with Telegram Stars
    PURCHASE_REFUND = "purchase_refund"  # taken back when the Stars were refunded
    PURCHASE_REFUND_UNDONE = "purchase_refund_undone"  # given back: Telegram refused the refund
    INVITE_BONUS = "invite_bonus"        # a newcomer's, for starting through an invite link
    REFERRAL = "referral"                # the inviter's share of a purchase by someone invited
    REFERRAL_REFUND = "referral_refund"  # that share taken back with the purchase's refund
    REFERRAL_REFUND_UNDONE = "referral_refund_undone"  # given back: Telegram refused the refund
    PROMO = "promo"                      # a promo code redeemed
    IMPROVE = "improve"                  # ✨ Improve of a picker's prompt (store/improvements.py)
    IMPROVE_REFUND = "improve_refund"    # given back: the improvement failed


class GenerationState(StrEnum):
    PENDING = "pending"              # charged, not yet accepted by Kie
    RUNNING = "running"              # Kie has the task; the tracker follows it
    SUCCEEDED = "succeeded"          # Kie finished; the result is being sent
    DELIVERED = "delivered"
    UNDELIVERABLE = "undeliverable"  # finished, but the user cannot be reached (blocked the bot)
    FAILED = "failed"                # refunded


# The states the tracker owns: each has a due time and a deadline, and ends refunded if it
# reaches neither `delivered` nor `undeliverable`.
OPEN_STATES = (GenerationState.PENDING, GenerationState.RUNNING, GenerationState.SUCCEEDED)
# What a failure refunds unless told otherwise: a task with no result yet.
WITHOUT_RESULT = (GenerationState.PENDING, GenerationState.RUNNING)
# A pending generation's kie_state once its create is on its way (Store.fence_create).
SENDING = "sending"
# Failures whose create may have made a Kie task the bot never recorded: a kill between Kie's
# answer and storing it, or an answer that never came. A callback naming such a task delivers
# its result after all, free (Store.recover).
UNRECORDED_FAILURES = ("interrupted", "unanswered")


@dataclass(frozen=True, slots=True)
class Purchase:
    charge_id: str
    user_id: int
    package: str
    credits: int
    stars: int
    created_at: float
    refunded_at: float | None  # when Telegram confirmed the Stars went back
    taken_back: int | None      # credits held back for the refund (refunded_at None: pending)
    refund_tries: int = 0


class InviteOutcome(StrEnum):
    """What `/start ref_<code>` came to (Store.join_through_invite)."""

    JOINED = "joined"        # recorded as invited by the code's owner (and given the bonus)
    UNKNOWN = "unknown"      # no one has this code
    OWN = "own"              # the person's own code
    NOT_NEW = "not_new"      # they had started before this update: nobody's invitee now


@dataclass(frozen=True, slots=True)
class Invites:
    """What one person's invite link brought: people who joined through it, how many of them
    bought (a purchase not refunded), and the credits earned from their purchases (net of
    refunds)."""

    joined: int
    bought: int
    earned: int


@dataclass(frozen=True, slots=True)
class PromoCode:
    code: str               # upper case: codes are case-insensitive
    credits: int
    uses: int | None        # redemptions allowed in total; None: no limit
    used: int
    expires_at: float | None
    off_at: float | None    # turned off by an admin
    admin_id: int           # who made it
    created_at: float


@dataclass(frozen=True, slots=True)
class ModelOverride:
    model: str
    price: int | None       # None: the catalog's price
    hidden_by: str | None   # None: offered; "admin" or "kie"


@dataclass(frozen=True, slots=True)
class Stats:
    users: int
    active_day: int                         # users who started a generation in the last 24 h
    by_state: dict[str, int]
    by_model: dict[str, int]
    ledger: dict[str, int]                  # sum of amounts by ledger kind
    stars: int                              # Stars received, refunds deducted
    purchases: int


@dataclass(frozen=True, slots=True)
class StartLimits:
    """What one user may start: generations open at once, and started in the last minute."""

    max_open: int
    max_per_minute: int


@dataclass(frozen=True, slots=True)
class User:
    id: int
    username: str | None
    first_name: str
    last_name: str | None
    language: str | None
    tg_language: str | None
    balance: int
    banned: bool
    blocked: bool
    created_at: float

    @property
    def display_name(self) -> str:
        return f"@{self.username}" if self.username else self.first_name or str(self.id)


@dataclass(frozen=True, slots=True)
class LedgerRow:
    id: int
    user_id: int
    amount: int
    balance_after: int
    kind: str
    generation_id: int | None
    admin_id: int | None
    note: str | None
    source: str | None
    created_at: float


# A picker answers this long after it was opened; then it says so (and is forgotten).
DRAFT_LIFETIME = 6 * 3600.0


@dataclass(frozen=True, slots=True)
class Draft:
    id: int
    user_id: int
    chat_id: int
    request_message_id: int | None
    picker_message_id: int | None
    kind: str
    prompt: str
    model: str | None
    options: dict[str, str]
    state: str
    revision: int
    created_at: float
    picture: str | None = None  # Telegram file id of the input picture
    short_at: float | None = None  # when its ✅ found too few credits


@dataclass(frozen=True, slots=True)
class Prompt:
    """A text or photo sent without a command, waiting for its kind (🖼 🎬 🎵) or, once a
    question was asked (ForceReply), for its words."""

    id: int
    user_id: int
    chat_id: int
    message_id: int | None
    kind: str | None
    text: str | None
    picture: str | None
    question_id: int | None
    created_at: float


@dataclass(frozen=True, slots=True)
class Generation:
    id: int
    user_id: int
    chat_id: int
    request_message_id: int | None
    status_message_id: int | None
    draft_id: int | None
    kind: str
    model: str
    prompt: str
    options: dict[str, str]
    input: dict[str, Any]
    price: int
    task_id: str | None
    state: GenerationState
    kie_state: str | None
    result_urls: list[str]
    failure: str | None
    failure_detail: str | None
    checks: int
    deliveries: int
    next_check_at: float | None
    deadline_at: float
    created_at: float
    submitted_at: float | None
    finished_at: float | None
    delivered_at: float | None
    picture: str | None = None  # Telegram file id of the input picture
    # What Kie said of each result file, by position: {"title": ..., "duration": ...}.
    result_files: list[dict[str, Any]] = field(default_factory=list)
    owner: str | None = None  # the instance working on it right now (Store.instance)
    kie_key: str | None = None  # the Kie key that created its task (None: KIE_API_KEY)
    source_id: int | None = None  # a follow-up's (⬆️, ➕): the generation whose result it takes

    def __str__(self) -> str:
        """How log lines name it: every id an operator greps for, in one place."""
        return f"generation {self.id} [user {self.user_id}, {self.model}, task {self.task_id or '-'}]"


@dataclass(frozen=True, slots=True)
class DeliveredFile:
    """One file of a delivered result as Telegram holds it: sent again by `file_id` with the
    method of its `kind` (the Message field it came back in: photo, video, audio, animation,
    document)."""

    kind: str
    file_id: str


def row_to(cls: type[RowT], row: Row) -> RowT:
    """Build a row dataclass from a database row, decoding JSON and flag columns."""
    values = dict(row)
    for key in ("options", "input"):
        if key in values:
            values[key] = json.loads(values[key] or "{}")
    for key in ("result_urls", "result_files"):
        if key in values:
            values[key] = json.loads(values[key] or "[]")
    if "state" in values and cls is Generation:
        values["state"] = GenerationState(values["state"])
    for key in ("banned", "blocked"):
        if key in values:
            values[key] = bool(values[key])
    fields = cls.__dataclass_fields__
    return cls(**{k: v for k, v in values.items() if k in fields})
