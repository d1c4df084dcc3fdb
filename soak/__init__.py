"""Long load and fault runs against real siyu processes (`make soak`); see docs/operations.md,
"Load, faults and scaling"."""
