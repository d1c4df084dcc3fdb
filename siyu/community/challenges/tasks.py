"""Listeners and background jobs of community challenges.

None needed: a check-in or topic post completes the loyalty `post` task inline
(`posts.complete_post_task`), in the same transaction as the post.
"""

from __future__ import annotations
