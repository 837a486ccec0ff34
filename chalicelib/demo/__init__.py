"""``baton demo``: a sample repository and shell agents that show a whole run end to end."""
