"""Channel adapters behind one interface; `adapter_for(account)` builds the right one."""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any

from siyu.messaging.adapters.base import Adapter
from siyu.models import AdapterKind, ChannelAccount, ConsentChannel

# Lazy: an adapter's SDK is imported only when an account of that kind sends.
_FACTORIES: dict[AdapterKind, str] = {
    AdapterKind.SANDBOX: "siyu.messaging.adapters.sandbox:build",
    AdapterKind.WECOM_CUSTOMER: "siyu.messaging.adapters.wecom:build_customer",
    AdapterKind.WECOM_GROUP: "siyu.messaging.adapters.wecom:build_group",
    AdapterKind.SMS_ALIYUN: "siyu.messaging.adapters.sms_aliyun:build",
    AdapterKind.SMS_TENCENT: "siyu.messaging.adapters.sms_tencent:build",
    AdapterKind.EMAIL: "siyu.messaging.adapters.email:build",
    AdapterKind.WEBHOOK: "siyu.messaging.adapters.webhook:build",
    AdapterKind.OFFICIAL_ACCOUNT: "siyu.integrations.wechat.template_adapter:build",
}


def adapter_for(account: ChannelAccount) -> Adapter:
    """The adapter for a channel account (settings only; credentials come with each send)."""
    module_name, _, attribute = _FACTORIES[AdapterKind(account.kind)].partition(":")
    factory: Callable[[dict[str, Any]], Adapter] = getattr(importlib.import_module(module_name), attribute)
    return factory(dict(account.settings or {}))


def consent_channel_of(kind: AdapterKind, settings: dict[str, Any]) -> ConsentChannel | None:
    """The consent row a kind of account answers to (the sandbox may simulate any channel)."""
    if kind == AdapterKind.SANDBOX:
        simulated = settings.get("consent_channel")
        return ConsentChannel(simulated) if simulated else None
    return {
        AdapterKind.WECOM_CUSTOMER: ConsentChannel.WECOM,
        AdapterKind.WECOM_GROUP: None,
        AdapterKind.SMS_ALIYUN: ConsentChannel.SMS,
        AdapterKind.SMS_TENCENT: ConsentChannel.SMS,
        AdapterKind.EMAIL: ConsentChannel.EMAIL,
        AdapterKind.WEBHOOK: None,
        AdapterKind.OFFICIAL_ACCOUNT: ConsentChannel.OFFICIAL_ACCOUNT,
    }[kind]
