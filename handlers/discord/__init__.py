"""Discord front end (discord.py): slash commands, embeds, alert delivery."""
