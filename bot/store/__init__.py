"""The store adapter: SQLite behind one class; nothing here knows Telegram or Kie.ai."""

from bot.store.models import (
    WITHOUT_RESULT,
    Draft,
    Generation,
    GenerationState,
    LedgerKind,
    LedgerRow,
    ModelOverride,
    Purchase,
    StartLimits,
    Stats,
    User,
)
from bot.store.sqlite import DraftChanged, DraftClosed, InsufficientCredits, LimitReached, Store

__all__ = [
    "WITHOUT_RESULT",
    "Draft",
    "DraftChanged",
    "DraftClosed",
    "Generation",
    "GenerationState",
    "InsufficientCredits",
    "LedgerKind",
    "LedgerRow",
    "LimitReached",
    "ModelOverride",
    "Purchase",
    "StartLimits",
    "Stats",
    "Store",
    "User",
]
