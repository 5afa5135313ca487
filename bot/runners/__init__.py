"""How the bot takes its updates: long polling (polling.py) or Telegram's webhook (webhook.py).
Each runs until the application's stop event is set; everything else is the application's."""
