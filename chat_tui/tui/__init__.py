"""The full-screen Textual face."""
