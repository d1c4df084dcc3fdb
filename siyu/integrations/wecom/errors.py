"""What can go wrong talking to WeCom, as one exception type with a short reason and a verdict:
try again later (`retryable`) or not."""

from __future__ import annotations

RETRY_CODES = frozenset({-1, 45009, 45033, 45011})
"""System busy, API frequency limit, concurrency limit, per-minute limit: try again later."""
TOKEN_CODES = frozenset({40001, 40014, 42001})
"""Bad or expired access token: a new one is fetched and the call repeated once."""

KNOWN_CODES: dict[int, str] = {
    -1: "系统繁忙",
    40001: "secret 错误或 access_token 无效",
    40013: "corpid 无效",
    40014: "access_token 无效",
    40096: "external_userid 无效",
    41051: "客户已开始聊天或欢迎语已发送",
    41096: "欢迎语正在由其他应用下发",
    42001: "access_token 已过期",
    45009: "接口调用超过频率限制",
    45033: "接口并发调用超过限制",
    60111: "成员 userid 不存在",
    84061: "不存在外部联系人的关系",
    40098: "成员尚未实名认证",
    41054: "该用户状态不允许转接",
    40129: "客户转接次数已达上限",
    90206: "小程序未关联到企业",
    40050: "chat_id 不存在",
    40058: "不合法的参数",
    40068: "不合法的标签",
    40071: "标签名字已经存在",
    40072: "标签名字过长",
    40097: "该成员尚未激活或联系方式不合法",
    41060: "群发提醒次数已达上限",
    701008: "没有互通账号",
}
"""Error codes siyu meets often, with WeCom's meaning (shown on the integration page)."""


class WecomError(Exception):
    """A WeCom call that did not succeed. `code` is WeCom's errcode (None for a transport or HTTP
    failure), `reason` a short stable label ("wecom_45009", "timeout", "http_502"…), `retryable`
    whether the same call may succeed later."""

    def __init__(self, message: str, *, api: str, code: int | None = None, reason: str = "", retryable: bool = False):
        super().__init__(message)
        self.message = message
        self.api = api
        self.code = code
        self.reason = reason or (f"wecom_{code}" if code is not None else "error")
        self.retryable = retryable

    def __str__(self) -> str:
        meaning = KNOWN_CODES.get(self.code) if self.code is not None else None
        suffix = f" ({meaning})" if meaning else ""
        return f"{self.api}: {self.message}{suffix}"


class WecomRateLimited(WecomError):
    """siyu's own limiter held the call back: the corp's budget for this API is spent until
    `retry_after_s` from now (WeCom would answer 45009)."""

    def __init__(self, *, api: str, retry_after_s: float):
        super().__init__(
            f"rate limit for {api} reached; retry in {retry_after_s:.0f} s",
            api=api,
            code=None,
            reason="rate_limited",
            retryable=True,
        )
        self.retry_after_s = retry_after_s


class NotConfigured(Exception):
    """The workspace has no (active) WeCom integration, or a secret the call needs is missing."""
