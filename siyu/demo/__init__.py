"""The demo brand (栖梧 QIWU 女装): a realistic workspace built by `siyu demo`."""

from siyu.demo.builder import build_demo
from siyu.demo.catalog import BRAND_NAME, DEMO_EMAIL, DEMO_PASSWORD, USERS

__all__ = ["BRAND_NAME", "DEMO_EMAIL", "DEMO_PASSWORD", "USERS", "build_demo"]
