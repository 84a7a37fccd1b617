-- Fresh parts are written compact (every column in one file) until a
-- merge makes them larger than 128 MB uncompressed, then wide (a file per
-- column, what analysts' scans of a few columns want). An insert of 100K
-- events writes about 12 MB to events: wide at ClickHouse's default
-- threshold (10 MB), a file per column to open, buffer and sync, and for
-- the first merges to read back. Compact, the server spends less CPU per
-- event: a fifth less over the first million events, 8-11% less over three
-- million with every merge they cause (same-sitting comparisons; README,
-- Performance). A partition whose parts never merge past 128 MB stays
-- compact: a day of events under about a million, the rollups' months on
-- a small fleet. At that size scans read fast either way.
ALTER TABLE ${db}.events MODIFY SETTING min_bytes_for_wide_part = 134217728;
ALTER TABLE ${db}.terminal_minutes MODIFY SETTING min_bytes_for_wide_part = 134217728;
ALTER TABLE ${db}.scope_minutes MODIFY SETTING min_bytes_for_wide_part = 134217728;
