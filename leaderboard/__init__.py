"""Built-in leaderboard plugins: ranking and rendering.

Installed under the import name ``negbench_leaderboard``.
"""
