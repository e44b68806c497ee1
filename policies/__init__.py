"""Pure decisions: capacity, forecasting, pool sizing, normalization, shedding and routing.

Nothing here reads a clock, does I/O or logs; see ARCHITECTURE.md.
"""
