// Package printers renders built-in objects as metav1.Table rows the way
// kube-apiserver 1.33 does, so that `kubectl get` (which asks the server for
// Table output and prints whatever columns come back) looks identical against
// pgkube.
//
// kube-apiserver always generates the wide variant of a table and leaves it to
// the client to hide Priority>0 columns, so every Row here fills every column.
package printers

import (
	"fmt"
	"time"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
)

// Printer renders one resource's rows for a metav1.Table.
type Printer struct {
	Columns []metav1.TableColumnDefinition                         // including wide columns (Priority 1)
	Row     func(obj runtime.Object, now time.Time) ([]any, error) // one cell per column
}

// rowFunc is the signature of Printer.Row.
type rowFunc = func(obj runtime.Object, now time.Time) ([]any, error)

type groupResource struct{ group, resource string }

var registry = func() map[groupResource]Printer {
	m := make(map[groupResource]Printer, len(builtins))
	for _, b := range builtins {
		k := groupResource{b.group, b.resource}
		if _, dup := m[k]; dup {
			panic(fmt.Sprintf("printers: %s/%s registered twice", b.group, b.resource))
		}
		m[k] = Printer{Columns: b.columns, Row: b.row}
	}
	return m
}()

// For returns the printer of a built-in resource, e.g. For("apps", "deployments"); core group is "".
//
// Resources that kube-apiserver serves with its generic table convertor
// (limitranges, roles, clusterroles, customresourcedefinitions) are reported
// as found and get the Default printer, so callers need no special cases.
func For(group, resource string) (Printer, bool) {
	p, ok := registry[groupResource{group, resource}]
	if !ok {
		return Printer{}, false
	}
	return clonePrinter(p), true
}

// Default is the printer for kinds without their own (Name, Created At), as kube-apiserver's default table convertor.
func Default() Printer {
	return clonePrinter(defaultPrinter)
}

// clonePrinter hands out a private copy of the column slice so a caller that
// tweaks its table (e.g. clearing descriptions) cannot corrupt the registry.
func clonePrinter(p Printer) Printer {
	p.Columns = append([]metav1.TableColumnDefinition(nil), p.Columns...)
	return p
}

var defaultPrinter = Printer{
	Columns: columns(
		nameColumn(),
		metav1.TableColumnDefinition{Name: "Created At", Type: "date", Description: objectMetaDoc["creationTimestamp"]},
	),
	Row: func(obj runtime.Object, _ time.Time) ([]any, error) {
		m, err := meta.Accessor(obj)
		if err != nil {
			return nil, fmt.Errorf("printers: %T cannot be shown as a table: %w", obj, err)
		}
		// The generic convertor prints an absolute timestamp, not an age,
		// because it is also used for kinds whose clients format dates themselves.
		return []any{m.GetName(), m.GetCreationTimestamp().UTC().Format(time.RFC3339)}, nil
	},
}

// typed adapts a row function over one concrete type to rowFunc.
func typed[T runtime.Object](f func(T, time.Time) []any) rowFunc {
	return typedErr(func(o T, now time.Time) ([]any, error) { return f(o, now), nil })
}

// typedErr is typed for row functions that can fail.
func typedErr[T runtime.Object](f func(T, time.Time) ([]any, error)) rowFunc {
	return func(obj runtime.Object, now time.Time) ([]any, error) {
		o, ok := obj.(T)
		if !ok {
			var want T
			return nil, fmt.Errorf("printers: expected %T, got %T", want, obj)
		}
		return f(o, now)
	}
}
