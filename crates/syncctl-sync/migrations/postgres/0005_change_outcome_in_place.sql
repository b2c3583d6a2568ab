-- Each audit row is inserted `planned` and updated once with its outcome. No query looks audit
-- rows up by link, so that index only cost an entry per insert and another per update; without
-- it, and with room left on each page, the outcome is written beside the row (a HOT update)
-- instead of adding a version to every index (measured: the outcome UPDATE of a 1 000-row
-- page took half the time).
DROP INDEX IF EXISTS sync_change_by_link;
ALTER TABLE sync_change SET (fillfactor = 50);
