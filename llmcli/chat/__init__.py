"""Chat: conversations, saved sessions and chat templates."""
