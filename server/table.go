package server

import (
	"encoding/json"
	"time"

	"github.com/pgkube/pgkube/printers"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
)

// table renders objects as a meta.k8s.io Table with the resource's columns.
// Each row carries the object's metadata (includeObject=Metadata, the
// default), the whole object (Object) or nothing (None), as kubectl asks.
func (s *Server) table(c *call, objs []runtime.Object, lm metav1.ListMeta) (*metav1.Table, error) {
	var p printers.Printer
	if c.res.CRD != "" {
		var err error
		if p, err = printers.Custom(c.res.Columns); err != nil {
			return nil, err
		}
	} else if bp, ok := printers.For(c.res.Group, c.res.Resource); ok {
		p = bp
	} else {
		p = printers.Default()
	}
	include := c.r.URL.Query().Get("includeObject")
	switch include {
	case "", string(metav1.IncludeMetadata), string(metav1.IncludeObject), string(metav1.IncludeNone):
	default:
		return nil, badRequest("includeObject must be one of None, Metadata, Object, got %q", include)
	}
	t := &metav1.Table{ListMeta: lm, Rows: make([]metav1.TableRow, 0, len(objs))}
	t.APIVersion, t.Kind = "meta.k8s.io/"+versionOr(c.out.version), "Table"
	if c.r.URL.Query().Get("noHeaders") != "true" {
		t.ColumnDefinitions = p.Columns
	}
	now := time.Now()
	for _, obj := range objs {
		cells, err := p.Row(obj, now)
		if err != nil {
			return nil, err
		}
		row := metav1.TableRow{Cells: cells}
		switch include {
		case string(metav1.IncludeNone):
		case string(metav1.IncludeObject):
			raw, err := json.Marshal(obj)
			if err != nil {
				return nil, err
			}
			row.Object.Raw = raw
		default:
			raw, err := json.Marshal(partialMeta(obj, c.out.version))
			if err != nil {
				return nil, err
			}
			row.Object.Raw = raw
		}
		t.Rows = append(t.Rows, row)
	}
	return t, nil
}
