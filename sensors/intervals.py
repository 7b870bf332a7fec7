"""How often the sensors tick: those somebody waits on every pass of the sensor daemon, background ones less often."""

#: Sensors of requests somebody waits on (an eval, a dataset validation, a promotion, a gate): every pass of the
#: sensor daemon, which runs every 5 s and evaluates the due sensors one after another. Under 5 s on purpose: at
#: exactly 5 s a sensor evaluated later in one pass than in the previous one is not yet due and waits a whole
#: pass (bench/bench_cycle.py saw registrations wait up to 9.4 s for their run). Each such sensor costs the idle
#: daemon and code server about 0.4 CPU-s a minute.
SENSOR_INTERVAL_SECONDS = 4
#: Sensors of background work (incidents shown on the lineage, recomputes, experiment analyses).
BACKGROUND_SENSOR_INTERVAL_SECONDS = 14  # every third pass (under 15 s: see above)
