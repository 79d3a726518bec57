package server

import (
	"net/http"
	"strings"
)

// requestInfo is what a resource URL names, parsed once per request.
type requestInfo struct {
	Group, Version string
	Namespace      string
	Resource       string
	Name           string
	Subresource    string
	// Verb is the Kubernetes verb: get, list, watch, create, update, patch,
	// delete, deletecollection.
	Verb string
	// Path is what follows a proxy subresource (nodes/NAME/proxy/PATH).
	Path string
}

// parseResourcePath reads the part of a URL after /api/v1 or /apis/G/V:
//
//	[watch/] [namespaces/NS/] RESOURCE [/NAME [/SUBRESOURCE]]
//
// The namespaces resource itself is the exception: namespaces/NAME/status and
// namespaces/NAME/finalize are its subresources.
func parseResourcePath(group, version string, parts []string, r *http.Request) (requestInfo, bool) {
	ri := requestInfo{Group: group, Version: version}
	watchPath := false
	if len(parts) > 0 && parts[0] == "watch" {
		watchPath = true
		parts = parts[1:]
	}
	if len(parts) >= 3 && parts[0] == "namespaces" && !(len(parts) == 3 && (parts[2] == "status" || parts[2] == "finalize")) {
		ri.Namespace = parts[1]
		parts = parts[2:]
	}
	switch len(parts) {
	case 1:
		ri.Resource = parts[0]
	case 2:
		ri.Resource, ri.Name = parts[0], parts[1]
	case 3:
		ri.Resource, ri.Name, ri.Subresource = parts[0], parts[1], parts[2]
	default:
		// A proxy subresource carries the path to pass on.
		if len(parts) < 4 || parts[2] != "proxy" {
			return ri, false
		}
		ri.Resource, ri.Name, ri.Subresource = parts[0], parts[1], parts[2]
		ri.Path = strings.Join(parts[3:], "/")
		if strings.HasSuffix(r.URL.Path, "/") {
			ri.Path += "/"
		}
	}
	if ri.Resource == "" || (len(parts) >= 2 && ri.Name == "") {
		return ri, false
	}
	if ri.Resource == "namespaces" && ri.Namespace == "" && ri.Name != "" {
		// A namespace's own namespace is itself, for admission and audit.
		ri.Namespace = ""
	}
	q := r.URL.Query()
	switch r.Method {
	case http.MethodGet, http.MethodHead:
		switch {
		case watchPath || (isTrue(q.Get("watch")) && ri.Subresource != "proxy"):
			ri.Verb = "watch"
		case ri.Name == "":
			ri.Verb = "list"
		default:
			ri.Verb = "get"
		}
	case http.MethodPost:
		ri.Verb = "create"
	case http.MethodPut:
		ri.Verb = "update"
	case http.MethodPatch:
		ri.Verb = "patch"
	case http.MethodDelete:
		if ri.Name == "" {
			ri.Verb = "deletecollection"
		} else {
			ri.Verb = "delete"
		}
	default:
		ri.Verb = strings.ToLower(r.Method)
	}
	return ri, true
}

func isTrue(s string) bool { return s == "true" || s == "1" }
