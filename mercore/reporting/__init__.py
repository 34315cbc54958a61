"""What a finished run leaves for people: its run-folder artifacts (``artifacts``: predictions,
summary, tables, confusion matrices) and the HTML/Markdown report rebuilt from them (``html``)."""
