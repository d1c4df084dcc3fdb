"""Integrations with the platforms the pool lives on: WeCom (企业微信) and WeChat official accounts."""
