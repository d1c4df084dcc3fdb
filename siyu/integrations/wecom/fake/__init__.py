"""A local fake WeCom (and WeChat official-account) server with the documented request and answer
shapes, error codes and limits, so the integration runs end to end without a real corp: in the
test suite (`start_fake_server`) and in the demo (mounted at `/fake-wecom` by `siyu demo`).

It is not a mock of siyu: it is a second system siyu talks to over HTTP, keeps its own state
(`FakeWecom`), and pushes encrypted callbacks to siyu's callback URL the way WeCom does when
something happens on its side (a customer adds a staff member, leaves a group…), which tests and
the demo trigger through its `/sim/*` endpoints.

Areas add their endpoints in their own modules with `@api(...)` and `@sim(...)` (see `app`).
"""

from siyu.integrations.wecom.fake.state import FakeCorp, FakeError, FakeWecom

__all__ = ["FakeCorp", "FakeError", "FakeWecom"]
