"""The city's view: its indicators and its plan.

:mod:`.indicators` computes the ISO 37120, ISO 37122 and ITU U4SSC indicators from the hub
and keeps their history (one FIWARE ``KeyPerformanceIndicator`` entity per indicator);
:mod:`.indicators_cli` is ``cityos indicators ...`` (docs/indicators.md). :mod:`.plan`
turns a city's survey answers into a basic plan of services (docs/plan.md).
"""
