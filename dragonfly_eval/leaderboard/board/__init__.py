"""`dragonfly-eval leaderboard`: the table as data and its views (markdown, terminal, HTML, plot)."""
