-- Reads at a past resourceVersion use objects_live (for rows still live)
-- and objects_superseded (for rows replaced since), and the change log uses
-- the primary key: nothing reads objects_history, and every write paid for it.
DROP INDEX IF EXISTS objects_history;
