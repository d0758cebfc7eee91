"""The training engine: traced epochs, in-memory predict, compiled copies trained in turn or
side by side, and the schedulers that run many fits.

A fit is a `jobs.FitJob` whose route `jobs.route` decides once; `jobs.fit_job` trains one,
`schedule.Scheduler` many (pairs, threads, one at a time); `epoch_function.EpochFunction`
is the one epoch kernel (K >= 1 copies), `worker.Worker` the one reset of a compiled copy.
"""
