"""Planning: measured history, the private-domain fit check (私域适配度) and the KPI planner (目标拆解)."""
