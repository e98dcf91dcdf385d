"""The decision core's policies (schedule, degradation, drift, manual), its guards, and the facts
(training runs, releases) they depend on. Each module is a set of handlers over a `Ctx`."""
