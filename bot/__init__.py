"""A Telegram bot that turns chat messages into images, videos and music through Kie.ai."""
