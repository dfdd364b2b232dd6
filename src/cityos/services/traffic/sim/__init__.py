"""The SUMO side of the traffic service: everything that needs Eclipse SUMO (libsumo,
TraCI, sumolib, netconvert) or its file formats.

The simulation adapter (:mod:`.simulation`), scenarios (:mod:`.scenarios`), a run and its
result (:mod:`.runner`), tuning by simulation (:mod:`.tuning`), road networks from the
twin's streets (:mod:`.roadnet`), signal layouts from a network file (:mod:`.layout`),
detectors and actuated programs (:mod:`.detectors`, :mod:`.programs`), bus lines and
buses (:mod:`.transit`, :mod:`.buses`), and the simulated field side of a run through the
hub (:mod:`.cabinet`, :mod:`.mqttcabinet`, :mod:`.hubloop`). Nothing outside this package
imports SUMO's modules; the service itself (its task, routes and controllers) runs without
them.
"""
