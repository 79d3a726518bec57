-- One row per version of an object: the live version has superseded_rv NULL,
-- a superseded one carries the resourceVersion that replaced it, and a deletion
-- is a tombstone row (deleted, superseded by itself). Reads at the present, exact
-- reads at a past resourceVersion, paging and the watch change log all come from
-- this one table.
CREATE TABLE clusters (
    name         text PRIMARY KEY,
    -- The last resourceVersion handed out. Writers lock this row for the whole
    -- transaction, so resourceVersions commit in order within a cluster.
    rv           bigint NOT NULL DEFAULT 0,
    -- Versions superseded at or below this are gone: older reads get 410.
    compacted_rv bigint NOT NULL DEFAULT 0
);

INSERT INTO clusters (name) VALUES ('root');

CREATE TABLE objects (
    cluster       text    NOT NULL,
    rv            bigint  NOT NULL,
    resource      text    NOT NULL, -- storage key: "group/resource", core group empty
    namespace     text    NOT NULL, -- '' for cluster-scoped objects
    name          text    NOT NULL,
    prev_rv       bigint,           -- the version this one replaced, NULL on create
    superseded_rv bigint,
    deleted       boolean NOT NULL DEFAULT false,
    labels        jsonb   NOT NULL DEFAULT '{}',
    fields        jsonb   NOT NULL DEFAULT '{}', -- per-kind selectable fields
    data          bytea   NOT NULL,              -- the object as served, JSON
    PRIMARY KEY (cluster, rv)
);

CREATE UNIQUE INDEX objects_live ON objects (cluster, resource, namespace, name)
    WHERE superseded_rv IS NULL;
CREATE INDEX objects_history ON objects (cluster, resource, namespace, name, rv);
CREATE INDEX objects_superseded ON objects (cluster, superseded_rv)
    WHERE superseded_rv IS NOT NULL;

-- Service ClusterIPs and NodePorts. A row per allocated value, so that API
-- server processes sharing the database never hand out the same one twice.
CREATE TABLE allocations (
    cluster text NOT NULL,
    kind    text NOT NULL, -- 'clusterip' or 'nodeport'
    value   text NOT NULL,
    owner   text NOT NULL, -- namespace/name of the Service
    PRIMARY KEY (cluster, kind, value)
);

-- Where each cluster's resourceVersion stood at a point in time, recorded by
-- compaction runs: the history window is given in time, kept rows in versions.
CREATE TABLE rv_marks (
    cluster text        NOT NULL,
    rv      bigint      NOT NULL,
    at      timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (cluster, at)
);
