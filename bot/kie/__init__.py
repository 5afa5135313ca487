"""Kie.ai adapter: knows the wire format, nothing of Telegram."""

from bot.kie.client import KieClient
from bot.kie.constants import API_MARKET, API_SUNO
from bot.kie.ratelimit import Priority, RateLimiter
from bot.kie.schemas import ResultFile, TaskStatus

__all__ = ["API_MARKET", "API_SUNO", "KieClient", "Priority", "RateLimiter", "ResultFile", "TaskStatus"]
