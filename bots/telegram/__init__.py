"""Telegram frontend: python-telegram-bot application, handlers and reply sink."""
