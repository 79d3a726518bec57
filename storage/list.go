package storage

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/selection"
)

// ListOptions selects objects of one resource.
type ListOptions struct {
	Resource  string
	Namespace string // empty: all namespaces
	Labels    labels.Selector
	Fields    fields.Selector
	// AtRV, when non-zero, reads the state exactly at that resourceVersion.
	AtRV int64
	// Limit, when positive, bounds the page; After continues after the
	// (namespace, name) of the previous page's last item.
	Limit          int64
	AfterNamespace string
	AfterName      string
	// CountRemaining asks for the number of matching items after the page.
	CountRemaining bool
	// Visit, when set, receives each item instead of ListResult.Items: with
	// no labels or fields, and Data valid only during the call. Large lists
	// stream into a response without holding every row twice.
	Visit func(o *Object) error
}

// ListResult is one page.
type ListResult struct {
	Items []Object
	RV    int64 // the snapshot's resourceVersion
	More  bool
	// Remaining counts matching items after this page, when asked for and
	// there are more.
	Remaining int64
	// LastNamespace and LastName are the page's last key, where a next page
	// continues, when there are more.
	LastNamespace, LastName string
}

// List reads a consistent snapshot: at the cluster's current resourceVersion,
// or exactly at opts.AtRV.
func (s *Store) List(ctx context.Context, cluster string, opts ListOptions) (ListResult, error) {
	defer s.timed("list")()
	var res ListResult
	err := pgx.BeginTxFunc(ctx, s.pool, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly}, func(tx pgx.Tx) error {
		var current, compacted int64
		var b pgx.Batch
		b.Queue(setClusterLocal, cluster)
		b.Queue(`SELECT rv, compacted_rv FROM clusters WHERE name = $1`, cluster)
		br := tx.SendBatch(ctx, &b)
		_, err := br.Exec()
		if err == nil {
			err = br.QueryRow().Scan(&current, &compacted)
		}
		if cerr := br.Close(); err == nil {
			err = cerr
		}
		if errors.Is(err, pgx.ErrNoRows) {
			return ErrNoCluster
		}
		if err != nil {
			return fmt.Errorf("list: read cluster: %w", err)
		}
		at := current
		if opts.AtRV != 0 {
			if opts.AtRV < compacted {
				return ErrCompacted
			}
			if opts.AtRV > current {
				return ErrTooLarge
			}
			at = opts.AtRV
		}
		q := newQuery(cluster, opts.Resource)
		if opts.Namespace != "" {
			q.where("namespace = " + q.arg(opts.Namespace))
		}
		if err := q.labelSelector(opts.Labels); err != nil {
			return err
		}
		if err := q.fieldSelector(opts.Fields); err != nil {
			return err
		}
		filterEnd, argEnd := len(q.conds), len(q.args)
		if opts.AfterName != "" || opts.AfterNamespace != "" {
			q.where("(namespace, name) > (" + q.arg(opts.AfterNamespace) + ", " + q.arg(opts.AfterName) + ")")
		}
		filters := joinAnd(q.conds)
		cols := "namespace, name, rv, labels, fields, data"
		if opts.Visit != nil {
			cols = "namespace, name, rv, data"
		}
		var sql string
		if at == current {
			sql = "SELECT " + cols + " FROM objects WHERE " + filters + " AND superseded_rv IS NULL"
		} else {
			// The state at a past version: what is live and was written by
			// then, plus what was replaced since. Two branches, so each can
			// use its own index (live rows; recently superseded rows).
			atArg := q.arg(at)
			sql = "SELECT " + cols + " FROM objects WHERE " + filters + " AND superseded_rv IS NULL AND rv <= " + atArg +
				" UNION ALL SELECT " + cols + " FROM objects WHERE " + filters + " AND superseded_rv > " + atArg +
				" AND rv <= " + atArg + " AND NOT deleted"
		}
		sql += " ORDER BY namespace, name"
		if opts.Limit > 0 {
			sql += " LIMIT " + strconv.FormatInt(opts.Limit+1, 10)
		}
		rows, err := tx.Query(ctx, sql, q.args...)
		if err != nil {
			return fmt.Errorf("list %s: %w", opts.Resource, err)
		}
		res = ListResult{RV: at}
		var n int64
		var last Object
		for rows.Next() {
			n++
			if opts.Limit > 0 && n > opts.Limit {
				res.More = true
				break
			}
			o := Object{Key: Key{Resource: opts.Resource}}
			var err error
			if opts.Visit != nil {
				var raw pgtype.DriverBytes
				if err = rows.Scan(&o.Namespace, &o.Name, &o.RV, &raw); err == nil {
					if o.Data, err = s.open(cluster, o.Key, raw); err == nil {
						err = opts.Visit(&o)
					}
					o.Data = nil
				}
			} else if err = rows.Scan(&o.Namespace, &o.Name, &o.RV, &o.Labels, &o.Fields, &o.Data); err == nil {
				if o.Data, err = s.open(cluster, o.Key, o.Data); err == nil {
					res.Items = append(res.Items, o)
				}
			}
			if err != nil {
				rows.Close()
				return err
			}
			last = o
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return fmt.Errorf("list %s: %w", opts.Resource, err)
		}
		if res.More {
			res.LastNamespace, res.LastName = last.Namespace, last.Name
			if opts.CountRemaining {
				cq := &query{conds: append([]string{}, q.conds[:filterEnd]...), args: append([]any{}, q.args[:argEnd]...)}
				cq.where("(namespace, name) > (" + cq.arg(last.Namespace) + ", " + cq.arg(last.Name) + ")")
				f := joinAnd(cq.conds)
				count := "SELECT count(*) FROM objects WHERE " + f + " AND superseded_rv IS NULL"
				if at != current {
					atArg := cq.arg(at)
					count = "SELECT (SELECT count(*) FROM objects WHERE " + f + " AND superseded_rv IS NULL AND rv <= " + atArg +
						") + (SELECT count(*) FROM objects WHERE " + f + " AND superseded_rv > " + atArg + " AND rv <= " + atArg + " AND NOT deleted)"
				}
				err := tx.QueryRow(ctx, count, cq.args...).Scan(&res.Remaining)
				if err != nil {
					return fmt.Errorf("list %s: count: %w", opts.Resource, err)
				}
			}
		}
		return nil
	})
	return res, err
}

type query struct {
	conds []string
	args  []any
}

func newQuery(cluster, resource string) *query {
	q := &query{}
	q.where("cluster = " + q.arg(cluster))
	q.where("resource = " + q.arg(resource))
	return q
}

func (q *query) arg(v any) string {
	q.args = append(q.args, v)
	return "$" + strconv.Itoa(len(q.args))
}

func (q *query) where(c string) { q.conds = append(q.conds, c) }

func joinAnd(conds []string) string { return strings.Join(conds, " AND ") }

// labelSelector turns a label selector into SQL on the labels column, with
// upstream's meaning: != and notin also match objects without the label.
func (q *query) labelSelector(sel labels.Selector) error {
	if sel == nil || sel.Empty() {
		return nil
	}
	reqs, selectable := sel.Requirements()
	if !selectable {
		q.where("false")
		return nil
	}
	for _, r := range reqs {
		key := q.arg(r.Key())
		vals := r.Values().List()
		switch r.Operator() {
		case selection.Equals, selection.DoubleEquals, selection.In:
			q.where("labels->>" + key + " = ANY(" + q.arg(vals) + "::text[])")
		case selection.NotEquals, selection.NotIn:
			q.where("(labels->>" + key + " IS NULL OR labels->>" + key + " <> ALL(" + q.arg(vals) + "::text[]))")
		case selection.Exists:
			q.where("jsonb_exists(labels, " + key + ")")
		case selection.DoesNotExist:
			q.where("NOT jsonb_exists(labels, " + key + ")")
		default:
			return fmt.Errorf("unsupported label selector operator %q", r.Operator())
		}
	}
	return nil
}

// fieldSelector turns a field selector into SQL. metadata.name and
// metadata.namespace are columns; other fields live in the fields column,
// written there by the resource's field extractor, so a field missing from an
// object's map was never supported for its kind.
func (q *query) fieldSelector(sel fields.Selector) error {
	if sel == nil || sel.Empty() {
		return nil
	}
	for _, r := range sel.Requirements() {
		var col string
		switch r.Field {
		case "metadata.name":
			col = "name"
		case "metadata.namespace":
			col = "namespace"
		default:
			col = "fields->>" + q.arg(r.Field)
		}
		switch r.Operator {
		case selection.Equals, selection.DoubleEquals:
			q.where(col + " = " + q.arg(r.Value))
		case selection.NotEquals:
			q.where(col + " IS DISTINCT FROM " + q.arg(r.Value))
		default:
			return fmt.Errorf("unsupported field selector operator %q", r.Operator)
		}
	}
	return nil
}
