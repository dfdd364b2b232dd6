"""Energy service: forecasting and scheduling of batteries, PV and EV charging within the
grid's limits, and demand response. See docs/services/energy.md for the module map."""
