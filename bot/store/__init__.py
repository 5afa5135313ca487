"""The store adapter: SQLite behind one class; nothing here knows Telegram or Kie.ai."""

from bot.store.models import Draft, Generation, GenerationState, LedgerKind, LedgerRow, User
from bot.store.sqlite import DraftClosed, InsufficientCredits, Store

__all__ = ["Draft", "DraftClosed", "Generation", "GenerationState", "InsufficientCredits",
           "LedgerKind", "LedgerRow", "Store", "User"]
