-- Which record a change came from (the other side's key), so that the next run can adopt a
-- record a killed run created before it could link it.
ALTER TABLE sync_change ADD COLUMN origin_key text;
