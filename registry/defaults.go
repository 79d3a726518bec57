package registry

import "k8s.io/apimachinery/pkg/runtime"

// defaulters are the built-in kinds' defaulting functions, by Kind: what
// kube-apiserver fills in when a field is left unset.
func defaulters() map[string]func(obj runtime.Object) {
	return map[string]func(obj runtime.Object){}
}
