"""Add-by-phone errors with stable codes."""

from __future__ import annotations

from siyu.kit.errors import Conflict, NotFound


class AddTaskListNotFound(NotFound):
    code = "add_task_list_not_found"


class AddTaskNotFound(NotFound):
    code = "add_task_not_found"


class AddTaskAlreadyAdded(Conflict):
    """The customer already became a friend; the task can no longer be marked by hand."""

    code = "add_task_already_added"
