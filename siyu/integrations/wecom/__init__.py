"""WeCom (企业微信) integration: API client, callbacks, live codes, messages, tags, sync, sidebar.

`client` talks to WeCom (shared token cache, rate limiter, error mapping); `config` loads a
workspace's corp settings; `dispatch` routes decrypted callback events to the area handling them;
`fake` is a local WeCom server with the documented shapes, for tests and the demo.
"""
