package registry

import (
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/validation/field"
)

// semanticValidators are the built-in kinds' rules beyond their schemas,
// by Kind, as kube-apiserver checks them; old is nil on create.
func semanticValidators() map[string]func(obj, old runtime.Object) field.ErrorList {
	return map[string]func(obj, old runtime.Object) field.ErrorList{}
}
