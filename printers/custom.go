package printers

import (
	"bytes"
	"fmt"
	"strings"
	"time"

	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/util/jsonpath"
)

// Custom is the printer of a custom resource: Name, then the CRD's
// additionalPrinterColumns (or Age when it declares none), each cell read
// with its JSONPath as kube-apiserver's CRD table convertor does.
func Custom(cols []apiextensionsv1.CustomResourceColumnDefinition) (Printer, error) {
	if len(cols) == 0 {
		cols = []apiextensionsv1.CustomResourceColumnDefinition{{Name: "Age", Type: "date", JSONPath: ".metadata.creationTimestamp"}}
	}
	p := Printer{Columns: []metav1.TableColumnDefinition{nameColumn()}}
	paths := make([]*jsonpath.JSONPath, len(cols))
	for i, c := range cols {
		jp := jsonpath.New(c.Name)
		if err := jp.Parse(fmt.Sprintf("{%s}", c.JSONPath)); err != nil {
			return Printer{}, fmt.Errorf("column %s: bad JSONPath %q: %w", c.Name, c.JSONPath, err)
		}
		jp.AllowMissingKeys(true)
		paths[i] = jp
		p.Columns = append(p.Columns, metav1.TableColumnDefinition{
			Name: c.Name, Type: c.Type, Format: c.Format, Description: c.Description, Priority: c.Priority})
	}
	p.Row = func(obj runtime.Object, now time.Time) ([]any, error) {
		m, err := meta.Accessor(obj)
		if err != nil {
			return nil, err
		}
		u, err := runtime.DefaultUnstructuredConverter.ToUnstructured(obj)
		if err != nil {
			return nil, err
		}
		cells := []any{m.GetName()}
		for i, jp := range paths {
			cells = append(cells, cell(jp, u, cols[i].Type, now))
		}
		return cells, nil
	}
	return p, nil
}

// cell reads one column: a single value keeps its JSON type (numbers stay
// numbers for kubectl to format), dates become ages; several values are
// joined; none is nil.
func cell(jp *jsonpath.JSONPath, obj map[string]any, typ string, now time.Time) any {
	results, err := jp.FindResults(obj)
	if err != nil || len(results) == 0 || len(results[0]) == 0 {
		return nil
	}
	if len(results[0]) == 1 {
		v := results[0][0].Interface()
		switch typ {
		case "date":
			// Dates show as ages, as kube-apiserver renders them.
			if s, ok := v.(string); ok {
				if t, err := time.Parse(time.RFC3339, s); err == nil {
					return since(metav1.NewTime(t), now)
				}
			}
			return v
		case "integer", "number", "boolean":
			return v
		}
		if s, ok := v.(string); ok {
			return s
		}
	}
	var buf bytes.Buffer
	if err := jp.PrintResults(&buf, results[0]); err != nil {
		return nil
	}
	return strings.TrimSpace(buf.String())
}
