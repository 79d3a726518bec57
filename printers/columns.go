package printers

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// Column descriptions are taken from the API types' swagger docs, as upstream
// does, so `kubectl explain`-style text stays in sync with the vendored API.
var objectMetaDoc = metav1.ObjectMeta{}.SwaggerDoc()

type documented interface{ SwaggerDoc() map[string]string }

func doc(t documented, field string) string { return t.SwaggerDoc()[field] }

func columns(cs ...metav1.TableColumnDefinition) []metav1.TableColumnDefinition { return cs }

// nameColumn carries Format "name": kubectl relies on it to find the column
// it prefixes with "kind/" when several kinds are printed together.
func nameColumn() metav1.TableColumnDefinition {
	return metav1.TableColumnDefinition{Name: "Name", Type: "string", Format: "name", Description: objectMetaDoc["name"]}
}

func ageColumn() metav1.TableColumnDefinition {
	return stringColumn("Age", objectMetaDoc["creationTimestamp"])
}

func stringColumn(name, description string) metav1.TableColumnDefinition {
	return metav1.TableColumnDefinition{Name: name, Type: "string", Description: description}
}

func integerColumn(name, description string) metav1.TableColumnDefinition {
	return metav1.TableColumnDefinition{Name: name, Type: "integer", Description: description}
}

func booleanColumn(name, description string) metav1.TableColumnDefinition {
	return metav1.TableColumnDefinition{Name: name, Type: "boolean", Description: description}
}

// wide marks a column that kubectl only shows with -o wide.
func wide(c metav1.TableColumnDefinition) metav1.TableColumnDefinition {
	c.Priority = 1
	return c
}

// templateColumns are the wide Containers/Images pair shared by every
// controller that owns a pod template.
func templateColumns() []metav1.TableColumnDefinition {
	return []metav1.TableColumnDefinition{
		wide(stringColumn("Containers", "Names of each container in the template.")),
		wide(stringColumn("Images", "Images referenced by each container in the template.")),
	}
}

func withTemplate(head []metav1.TableColumnDefinition, tail ...metav1.TableColumnDefinition) []metav1.TableColumnDefinition {
	out := append([]metav1.TableColumnDefinition(nil), head...)
	out = append(out, templateColumns()...)
	return append(out, tail...)
}
