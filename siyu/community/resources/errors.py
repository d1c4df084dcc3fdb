"""Domain errors of the resources library."""

from __future__ import annotations

from siyu.kit.errors import Conflict, InvalidInput, NotFound


class ResourceNotFound(NotFound):
    """No such resource in the workspace — or one this member may not see (never told apart)."""

    code = "resource_not_found"


class InvalidResource(InvalidInput):
    """A field of the resource is wrong; `details["field"]` names it."""

    code = "invalid_resource"


class InvalidUpload(InvalidInput):
    """The uploaded file is empty, too large or not an allowed type (checked by its bytes)."""

    code = "invalid_upload"


class ResourceStateConflict(Conflict):
    """The change does not fit the resource's status (e.g. publishing a file without its file)."""

    code = "resource_state_conflict"
