"""Imports every module that registers callback handlers (see `dispatch`)."""

import siyu.integrations.wecom.callbacks.contacts
import siyu.integrations.wecom.groups.events
import siyu.integrations.wecom.tags.events  # noqa: F401
