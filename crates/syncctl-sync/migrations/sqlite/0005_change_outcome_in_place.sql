-- No query looks audit rows up by link: the index only cost an entry per insert and update.
DROP INDEX IF EXISTS sync_change_by_link;
