"""The console: one router gathering every area's pages."""

from __future__ import annotations

from fastapi import APIRouter

from siyu.addtasks.views import router as addtasks_views
from siyu.analytics.clv.views import router as analytics_clv_views
from siyu.analytics.funnels.views import router as analytics_funnels_views
from siyu.analytics.overview.views import router as analytics_overview_views
from siyu.analytics.performance.views import router as analytics_performance_views
from siyu.analytics.planning.views import router as analytics_planning_views
from siyu.analytics.retention.views import router as analytics_retention_views
from siyu.analytics.rfm.views import router as analytics_rfm_views
from siyu.audit.views import router as audit_views
from siyu.auth.views import router as auth_views
from siyu.campaigns.broadcasts.views import router as broadcasts_views
from siyu.campaigns.calendars.views import router as calendars_views
from siyu.campaigns.journeys.views import router as journeys_views
from siyu.channels.views import router as channels_views
from siyu.commerce.views import router as commerce_views
from siyu.community.challenges.views import router as challenges_views
from siyu.community.groups.views import router as groups_views
from siyu.community.koc.views import router as koc_views
from siyu.community.lottery.views import router as lottery_views
from siyu.community.resources.views import router as resources_views
from siyu.customers.importing.views import router as import_views
from siyu.customers.views import router as customer_views
from siyu.experiments.views import router as experiments_views
from siyu.integrations.wechat.views import router as wechat_views
from siyu.integrations.wecom.contactways.views import router as wecom_contactways_views
from siyu.integrations.wecom.messages.views import router as wecom_messages_views
from siyu.integrations.wecom.settings.views import router as wecom_settings_views
from siyu.integrations.wecom.sync.views import router as wecom_sync_views
from siyu.integrations.wecom.tags.views import router as wecom_tags_views
from siyu.jobs.views import router as job_views
from siyu.livecodes.views import router as livecodes_views
from siyu.loyalty.views import router as loyalty_views
from siyu.messaging.views import router as messaging_views
from siyu.ops.retention.views import router as ops_retention_views
from siyu.referrals.commission.views import router as commission_views
from siyu.referrals.views import router as referrals_views
from siyu.segments.views import router as segments_views
from siyu.shortlinks.views import router as shortlinks_views

router = APIRouter(include_in_schema=False)
for area in (
    auth_views,
    customer_views,
    import_views,
    channels_views,
    livecodes_views,
    shortlinks_views,
    experiments_views,
    segments_views,
    messaging_views,
    broadcasts_views,
    journeys_views,
    calendars_views,
    addtasks_views,
    commerce_views,
    loyalty_views,
    referrals_views,
    commission_views,
    groups_views,
    resources_views,
    challenges_views,
    lottery_views,
    koc_views,
    analytics_overview_views,
    analytics_funnels_views,
    analytics_retention_views,
    analytics_rfm_views,
    analytics_clv_views,
    analytics_performance_views,
    analytics_planning_views,
    wecom_sync_views,
    wecom_tags_views,
    wecom_messages_views,
    wecom_contactways_views,
    wecom_settings_views,
    wechat_views,
    job_views,
    audit_views,
    ops_retention_views,
):
    router.include_router(area)
