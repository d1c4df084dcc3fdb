"""Measure (数字化运营): overview, funnels, retention, RFM, CLV, ROI, staff performance, KPI planner.

Shared pieces live here: brand-local periods (`periods`), report tables with CSV/XLSX export
(`tables`) and drill-downs that turn the customers behind a figure into a static segment (`drill`).
"""
