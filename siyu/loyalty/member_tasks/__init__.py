"""Member tasks (任务): daily check-in with streak bonuses, posts, shares, profile, groups, invites.

`definitions` holds the operator's task list (CRUD), `service` what members do with it.
"""
