-- What each logical cluster holds: live objects and their stored bytes,
-- kept by the writers (they lock the cluster's row anyway), so per-tenant
-- limits are checked without counting rows.
SELECT set_config('pgkube.cluster', '*', true);

ALTER TABLE clusters ADD COLUMN objects bigint NOT NULL DEFAULT 0;
ALTER TABLE clusters ADD COLUMN bytes   bigint NOT NULL DEFAULT 0;

UPDATE clusters c SET objects = u.n, bytes = u.b
FROM (SELECT cluster, count(*) AS n, sum(octet_length(data)) AS b
      FROM objects WHERE superseded_rv IS NULL GROUP BY cluster) u
WHERE u.cluster = c.name;
