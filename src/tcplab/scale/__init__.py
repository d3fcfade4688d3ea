"""Beyond one file and one core: capture sets, Parquet tables, Dask.

- ``captureset``: ``tcplab analyze FILE... | DIR`` as one capture, merged by
  time; frame numbers that say which file a packet came from.
- ``engine``: the one adapter between this package and the analysis engine
  (segments of a set of flows in, connection records out) and the Arrow
  columns a segment travels in between processes.
- ``ranges``: one byte range of one file, resynchronised at a record
  (pcap) or block (pcapng) boundary.
- ``tables``: the Parquet schema of the connections and packets tables
  (docs/schema.md) and its writer.
- ``cluster``: the distributed run on Dask (docs/scale.md).
"""
