"""The pure log model: events, records, the replay fold and the projections, the payload codec,
durations and recorded failures. No I/O and no clock: everything here is a function of its
arguments. Imports nothing from storage, execution or the runtimes.
"""
