"""What a person reads: the terminal's progress, leaderboard and status, and the HTML report.

Everything here reads a study (or the events of a running search); nothing here searches.
"""
