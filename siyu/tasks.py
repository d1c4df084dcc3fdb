"""Imports every module that declares background jobs, so workers know all actors."""

import siyu.campaigns.broadcasts.tasks
import siyu.campaigns.calendars.tasks
import siyu.campaigns.journeys.tasks
import siyu.commerce.tasks
import siyu.customers.tasks
import siyu.loyalty.tasks
import siyu.messaging.tasks
import siyu.segments.tasks  # noqa: F401
