"""Imports every module that declares background jobs, so workers know all actors."""

import siyu.analytics.clv.tasks
import siyu.campaigns.broadcasts.tasks
import siyu.campaigns.calendars.tasks
import siyu.campaigns.journeys.tasks
import siyu.commerce.tasks
import siyu.community.challenges.tasks
import siyu.community.groups.tasks
import siyu.community.koc.tasks
import siyu.community.lottery.tasks
import siyu.community.resources.tasks
import siyu.customers.tasks
import siyu.integrations.wechat.tasks
import siyu.integrations.wecom.callbacks.tasks
import siyu.integrations.wecom.contactways.tasks
import siyu.integrations.wecom.messages.tasks
import siyu.integrations.wecom.sync.tasks
import siyu.integrations.wecom.tags.tasks
import siyu.loyalty.tasks
import siyu.messaging.tasks
import siyu.ops.retention.tasks
import siyu.referrals.commission.tasks
import siyu.referrals.tasks
import siyu.segments.tasks  # noqa: F401
