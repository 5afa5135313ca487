"""The store adapter: SQLite or PostgreSQL behind one class; nothing here knows Telegram or Kie.ai."""

from bot.store.database import IntegrityError
from bot.store.models import (
    DRAFT_LIFETIME,
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
from bot.store.store import (
    AlreadyRefunded,
    CreditsReserved,
    CreditsSpent,
    DraftChanged,
    DraftClosed,
    InsufficientCredits,
    LimitReached,
    Store,
)

__all__ = [
    "DRAFT_LIFETIME",
    "WITHOUT_RESULT",
    "AlreadyRefunded",
    "CreditsReserved",
    "CreditsSpent",
    "Draft",
    "DraftChanged",
    "DraftClosed",
    "Generation",
    "GenerationState",
    "InsufficientCredits",
    "IntegrityError",
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
