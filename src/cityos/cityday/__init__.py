"""A city day: the sample district of Phnom Penh through one simulated day, every service
through the hub, then the day's indicators against the same day without CityOS.

``cityos demo`` runs it (:func:`cityos.demo.run_demo`): each module here is one part of the
day — the clock that paces it (:mod:`.clock`), one phase per service (:mod:`.people`,
:mod:`.cameras`, :mod:`.fares`, :mod:`.traffic`, :mod:`.energy`, :mod:`.indicators`), the
no-CityOS baseline (:mod:`.baseline`), the summary table (:mod:`.summary`), the
timeline that orders them (:mod:`.day`) and the server that shows it live
(:mod:`.server`).
"""
