"""The Discord frontend: slash commands and mentions, replies streamed by editing messages."""
