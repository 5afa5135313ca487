"""Kie.ai adapter: knows the wire format, nothing of Telegram."""

from bot.kie.client import KieClient
from bot.kie.constants import (
    API_FLUX,
    API_GPT4O,
    API_MARKET,
    API_RUNWAY,
    API_SUNO,
    API_VEO,
    API_VEO_1080P,
)
from bot.kie.ratelimit import Priority, RateLimiter
from bot.kie.schemas import ResultFile, TaskStatus

__all__ = ["API_FLUX", "API_GPT4O", "API_MARKET", "API_RUNWAY", "API_SUNO", "API_VEO", "API_VEO_1080P",
           "KieClient", "Priority", "RateLimiter", "ResultFile", "TaskStatus"]
