package authz

import (
	"errors"
	"fmt"
	"strings"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

// htmlEscaper keeps user-controlled names and paths in a denial from being
// rendered as markup by anything that shows the message in a browser.
var htmlEscaper = strings.NewReplacer(`&`, "&amp;", `<`, "&lt;", `>`, "&gt;")

// ForbiddenMessage words a denial of a exactly as kube-apiserver does,
// appending ": reason" when the authorizer gave one. Clients and tests
// match on this text.
func ForbiddenMessage(a Attributes, reason string) string {
	msg := htmlEscaper.Replace(forbiddenMessage(a))
	if reason == "" {
		return msg
	}
	return msg + ": " + reason
}

func forbiddenMessage(a Attributes) string {
	user := ""
	if a.User != nil {
		user = a.User.Name
	}
	if !a.ResourceRequest {
		return fmt.Sprintf("User %q cannot %s path %q", user, a.Verb, a.Path)
	}
	resource := a.Resource
	if a.Subresource != "" {
		resource += "/" + a.Subresource
	}
	if a.Namespace != "" {
		return fmt.Sprintf("User %q cannot %s resource %q in API group %q in the namespace %q", user, a.Verb, resource, a.APIGroup, a.Namespace)
	}
	return fmt.Sprintf("User %q cannot %s resource %q in API group %q at the cluster scope", user, a.Verb, resource, a.APIGroup)
}

// forbidden is the 403 kube-apiserver returns for a denied request.
func forbidden(a Attributes, reason string) *apierrors.StatusError {
	gr := schema.GroupResource{Group: a.APIGroup, Resource: a.Resource}
	return apierrors.NewForbidden(gr, a.Name, errors.New(ForbiddenMessage(a, reason)))
}
