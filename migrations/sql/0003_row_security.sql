-- Row-level security: defense in depth for tenants sharing the database.
-- Every statement pgkube runs first names its logical cluster in the
-- setting pgkube.cluster (or '*' for work across clusters: compaction,
-- re-encryption, tenant removal). A row of another cluster is then neither
-- readable nor writable, whatever a query's WHERE clause says; without the
-- setting nothing is. FORCE applies the policies to the tables' owner too;
-- only superusers bypass them, so pgkube should connect as an ordinary role.
CREATE FUNCTION pgkube_visible(c text) RETURNS boolean
    LANGUAGE sql STABLE PARALLEL SAFE
    AS $$ SELECT coalesce(current_setting('pgkube.cluster', true), '') IN ('*', c) $$;

ALTER TABLE objects ENABLE ROW LEVEL SECURITY;
ALTER TABLE objects FORCE ROW LEVEL SECURITY;
CREATE POLICY cluster_rows ON objects USING (pgkube_visible(cluster)) WITH CHECK (pgkube_visible(cluster));

ALTER TABLE clusters ENABLE ROW LEVEL SECURITY;
ALTER TABLE clusters FORCE ROW LEVEL SECURITY;
CREATE POLICY cluster_rows ON clusters USING (pgkube_visible(name)) WITH CHECK (pgkube_visible(name));

ALTER TABLE allocations ENABLE ROW LEVEL SECURITY;
ALTER TABLE allocations FORCE ROW LEVEL SECURITY;
CREATE POLICY cluster_rows ON allocations USING (pgkube_visible(cluster)) WITH CHECK (pgkube_visible(cluster));

ALTER TABLE rv_marks ENABLE ROW LEVEL SECURITY;
ALTER TABLE rv_marks FORCE ROW LEVEL SECURITY;
CREATE POLICY cluster_rows ON rv_marks USING (pgkube_visible(cluster)) WITH CHECK (pgkube_visible(cluster));
