"""Kie.ai adapter: knows the wire format, nothing of Telegram."""

from bot.kie.client import KieClient
from bot.kie.ratelimit import Priority, RateLimiter

__all__ = ["KieClient", "Priority", "RateLimiter"]
