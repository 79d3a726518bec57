package schemas

import (
	"bytes"
	"fmt"
	"net/http"
	"sort"
	"strings"
	"unicode"

	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/kube-openapi/pkg/common"
	"k8s.io/kube-openapi/pkg/validation/spec"
)

// The documents' paths are laid out the way kube-apiserver's endpoint
// installer lays out its go-restful routes, so that operation IDs, actions
// and kinds match what clients generated against upstream expect. The
// routes are described through kube-openapi's route interfaces and turned
// into documents by its v2 and v3 builders, as upstream does.

// The media types pgkube reads and writes (no CBOR, unlike kube-apiserver).
// Functions rather than variables: each route gets its own slice.
func mediaTypes() []string {
	return []string{"application/json", "application/yaml", "application/vnd.kubernetes.protobuf"}
}

func streamingMediaTypes() []string {
	return append(mediaTypes(), "application/json;stream=watch", "application/vnd.kubernetes.protobuf;stream=watch")
}

func patchMediaTypes() []string {
	return []string{"application/json-patch+json", "application/merge-patch+json", "application/strategic-merge-patch+json", "application/apply-patch+yaml"}
}

// modelName stands for a definition where kube-openapi's builders expect a
// sample Go value: they name the value through OpenAPIModelName.
type modelName string

func (m modelName) OpenAPIModelName() string { return string(m) }

type param struct {
	name, desc, dataType string
	kind                 common.ParameterKind
	required             bool
}

func (p param) Name() string               { return p.name }
func (p param) Description() string        { return p.desc }
func (p param) Required() bool             { return p.required }
func (p param) Kind() common.ParameterKind { return p.kind }
func (p param) DataType() string           { return p.dataType }
func (p param) AllowMultiple() bool        { return false }

// MarshalJSON names the parameter in the builders' error messages.
func (p param) MarshalJSON() ([]byte, error) { return []byte(fmt.Sprintf("%q", p.name)), nil }

type response struct {
	code  int
	msg   string
	model any
}

func (r response) Code() int       { return r.code }
func (r response) Message() string { return r.msg }
func (r response) Model() any      { return r.model }

type route struct {
	method, path, operation, doc string
	params                       []common.Parameter
	consumes, produces           []string
	meta                         map[string]any
	reads, writes                any
	responses                    []common.StatusCodeResponse
}

func (r *route) Method() string                                   { return r.method }
func (r *route) Path() string                                     { return r.path }
func (r *route) OperationName() string                            { return r.operation }
func (r *route) Parameters() []common.Parameter                   { return r.params }
func (r *route) Description() string                              { return r.doc }
func (r *route) Consumes() []string                               { return r.consumes }
func (r *route) Produces() []string                               { return r.produces }
func (r *route) Metadata() map[string]any                         { return r.meta }
func (r *route) RequestPayloadSample() any                        { return r.reads }
func (r *route) ResponsePayloadSample() any                       { return r.writes }
func (r *route) StatusCodeResponses() []common.StatusCodeResponse { return r.responses }

// routeGroup is the routes of one group version (a go-restful WebService
// upstream).
type routeGroup struct {
	root   string
	routes []common.Route
}

func (g *routeGroup) RootPath() string                   { return g.root }
func (g *routeGroup) PathParameters() []common.Parameter { return nil }
func (g *routeGroup) Routes() []common.Route             { return g.routes }

// optionParams are the query parameters of each kind of request, taken from
// the option types' definitions so they carry upstream's descriptions.
type optionParams struct {
	list, create, update, patch, delete []common.Parameter
}

func newOptionParams(defs map[string]common.OpenAPIDefinition) (optionParams, error) {
	var out optionParams
	for _, o := range []struct {
		name string
		into *[]common.Parameter
	}{
		{nameListOptions, &out.list}, {nameCreateOptions, &out.create}, {nameUpdateOptions, &out.update},
		{namePatchOptions, &out.patch}, {nameDeleteOptions, &out.delete},
	} {
		def, ok := defs[o.name]
		if !ok {
			return out, fmt.Errorf("no definition of %s for query parameters", o.name)
		}
		*o.into = queryParams(def.Schema)
	}
	return out, nil
}

// queryParams lists the scalar top-level fields of an options type as
// query parameters; nested structs (preconditions) and the type meta are
// not expressible in a query.
func queryParams(s spec.Schema) []common.Parameter {
	names := make([]string, 0, len(s.Properties))
	for n := range s.Properties {
		names = append(names, n)
	}
	sort.Strings(names)
	var out []common.Parameter
	for _, n := range names {
		if n == "kind" || n == "apiVersion" {
			continue
		}
		p := s.Properties[n]
		if p.Ref.String() != "" || len(p.Type) == 0 {
			continue
		}
		t := p.Type[0]
		// Lists are sent as repeated parameters, which go-restful could only
		// describe as their element type; upstream's documents do the same.
		if t == "array" && p.Items != nil && p.Items.Schema != nil && len(p.Items.Schema.Type) > 0 {
			t = p.Items.Schema.Type[0]
		}
		if t == "object" || t == "array" {
			continue
		}
		out = append(out, param{name: n, desc: p.Description, dataType: t, kind: common.QueryParameterKind})
	}
	return out
}

func without(params []common.Parameter, names ...string) []common.Parameter {
	var out []common.Parameter
	for _, p := range params {
		skip := false
		for _, n := range names {
			skip = skip || p.Name() == n
		}
		if !skip {
			out = append(out, p)
		}
	}
	return out
}

// subresourceInfo gives the kind a subresource reads and writes (its own for
// scale, binding, eviction and token) and the verbs it serves, as
// kube-apiserver serves them. Connect subresources (exec, log, proxy, ...)
// have no schema and are not described.
func subresourceInfo(name string, parent schema.GroupVersionKind) (schema.GroupVersionKind, []string, bool) {
	switch name {
	case "status", "ephemeralcontainers", "resize", "approval":
		return parent, []string{"get", "update", "patch"}, true
	case "finalize":
		return parent, []string{"update"}, true
	case "scale":
		return schema.GroupVersionKind{Group: "autoscaling", Version: "v1", Kind: "Scale"}, []string{"get", "update", "patch"}, true
	case "binding":
		return schema.GroupVersionKind{Version: "v1", Kind: "Binding"}, []string{"create"}, true
	case "eviction":
		return schema.GroupVersionKind{Group: "policy", Version: "v1", Kind: "Eviction"}, []string{"create"}, true
	case "token":
		return schema.GroupVersionKind{Group: "authentication.k8s.io", Version: "v1", Kind: "TokenRequest"}, []string{"create"}, true
	}
	return schema.GroupVersionKind{}, nil, false
}

// deleteReturnsObject names the built-in resources whose delete answers with
// the deleted object rather than a Status, as their upstream storage does.
func deleteReturnsObject(group, resource string) bool {
	switch group + "/" + resource {
	case "/pods", "/services", "/persistentvolumeclaims", "/persistentvolumes", "/podtemplates",
		"/resourcequotas", "/serviceaccounts", "storage.k8s.io/storageclasses":
		return true
	}
	return false
}

func defaultVerbs(r Resource) []string {
	if len(r.Verbs) > 0 {
		return r.Verbs
	}
	if r.CreateOnly {
		return []string{"create"}
	}
	return []string{"create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"}
}

// routeBuilder makes the routes of one resource.
type routeBuilder struct {
	opts   optionParams
	res    Resource
	gvk    schema.GroupVersionKind
	model  modelName
	list   modelName
	custom bool
	// nameOf names the definition of a subresource's built-in kind.
	nameOf func(schema.GroupVersionKind) (string, error)
	routes []common.Route
}

// article is what kube-apiserver's operation descriptions put before a
// kind: "a" or "an", or nothing for a kind that reads as a plural
// ("create Endpoints").
func article(noun string) string {
	if !strings.HasSuffix(noun, "ss") && strings.HasSuffix(noun, "s") {
		return " "
	}
	if strings.ContainsRune("aeiouAEIOU", rune(noun[0])) {
		return " an "
	}
	return " a "
}

func (b *routeBuilder) add(method, path, action, operation, doc string, gvk schema.GroupVersionKind, params []common.Parameter, reads any, produces []string, responses ...response) {
	r := &route{
		method: method, path: path, operation: operation, doc: doc,
		consumes: []string{"*/*"}, produces: produces, reads: reads,
		meta: map[string]any{"x-kubernetes-action": action, extensionGVK: gvkValue(gvk)},
	}
	if method == http.MethodPatch {
		r.consumes = patchMediaTypes()
	}
	r.params = append(r.params, param{name: "pretty", kind: common.QueryParameterKind, dataType: "string",
		desc: "If 'true', then the output is pretty printed. Defaults to 'false' unless the user-agent indicates a browser or command-line HTTP tool (curl and wget)."})
	if strings.Contains(path, "{namespace}") {
		r.params = append(r.params, param{name: "namespace", kind: common.PathParameterKind, dataType: "string", required: true,
			desc: "object name and auth scope, such as for teams and projects"})
	}
	if strings.Contains(path, "{name}") {
		r.params = append(r.params, param{name: "name", kind: common.PathParameterKind, dataType: "string", required: true,
			desc: "name of the " + gvk.Kind})
	}
	r.params = append(r.params, params...)
	if reads != nil {
		r.params = append(r.params, param{name: "body", kind: common.BodyParameterKind, required: method != http.MethodDelete})
	}
	for _, resp := range responses {
		r.responses = append(r.responses, resp)
	}
	if len(responses) > 0 {
		r.writes = responses[0].model
	}
	b.routes = append(b.routes, r)
}

func (b *routeBuilder) build() ([]common.Route, error) {
	res, kind := b.res, b.res.Kind
	prefix := "/" + gvPath(res.Group, res.Version)
	scoped, watchScoped, ns := prefix, prefix+"/watch", ""
	if res.Namespaced {
		scoped += "/namespaces/{namespace}"
		watchScoped += "/namespaces/{namespace}"
		ns = "Namespaced"
	}
	coll, item := scoped+"/"+res.Resource, scoped+"/"+res.Resource+"/{name}"
	o := b.opts
	ok := func(m any) response { return response{http.StatusOK, "OK", m} }
	created := func(m any) response { return response{http.StatusCreated, "Created", m} }
	accepted := func(m any) response { return response{http.StatusAccepted, "Accepted", m} }
	status := modelName(nameStatus)
	deleted := any(status)
	if !b.custom && deleteReturnsObject(res.Group, res.Resource) {
		deleted = b.model
	}
	watchEvent := modelName(nameWatchEvent)
	for _, verb := range defaultVerbs(res) {
		switch verb {
		case "list":
			b.add(http.MethodGet, coll, "list", "list"+ns+kind, "list or watch objects of kind "+kind, b.gvk, o.list, nil, streamingMediaTypes(), ok(b.list))
			if res.Namespaced {
				b.add(http.MethodGet, prefix+"/"+res.Resource, "list", "list"+kind+"ForAllNamespaces", "list or watch objects of kind "+kind, b.gvk, o.list, nil, streamingMediaTypes(), ok(b.list))
			}
		case "watch":
			b.add(http.MethodGet, watchScoped+"/"+res.Resource, "watchlist", "watch"+ns+kind+"List",
				"watch individual changes to a list of "+kind+". deprecated: use the 'watch' parameter with a list operation instead.", b.gvk, o.list, nil, streamingMediaTypes(), ok(watchEvent))
			b.add(http.MethodGet, watchScoped+"/"+res.Resource+"/{name}", "watch", "watch"+ns+kind,
				"watch changes to an object of kind "+kind+". deprecated: use the 'watch' parameter with a list operation instead, filtered to a single item with the 'fieldSelector' parameter.", b.gvk, o.list, nil, streamingMediaTypes(), ok(watchEvent))
			if res.Namespaced {
				b.add(http.MethodGet, prefix+"/watch/"+res.Resource, "watchlist", "watch"+kind+"ListForAllNamespaces",
					"watch individual changes to a list of "+kind+". deprecated: use the 'watch' parameter with a list operation instead.", b.gvk, o.list, nil, streamingMediaTypes(), ok(watchEvent))
			}
		case "create":
			b.add(http.MethodPost, coll, "post", "create"+ns+kind, "create"+article(kind)+kind, b.gvk, o.create, b.model, mediaTypes(), ok(b.model), created(b.model), accepted(b.model))
		case "deletecollection":
			params := append(append([]common.Parameter{}, o.delete...), without(o.list, "watch", "allowWatchBookmarks")...)
			b.add(http.MethodDelete, coll, "deletecollection", "deletecollection"+ns+kind, "delete collection of "+kind, b.gvk, params, modelName(nameDeleteOptions), mediaTypes(), ok(status))
		case "get":
			b.add(http.MethodGet, item, "get", "read"+ns+kind, "read the specified "+kind, b.gvk, nil, nil, mediaTypes(), ok(b.model))
		case "update":
			b.add(http.MethodPut, item, "put", "replace"+ns+kind, "replace the specified "+kind, b.gvk, o.update, b.model, mediaTypes(), ok(b.model), created(b.model))
		case "patch":
			b.add(http.MethodPatch, item, "patch", "patch"+ns+kind, "partially update the specified "+kind, b.gvk, o.patch, modelName(namePatch), mediaTypes(), ok(b.model), created(b.model))
		case "delete":
			b.add(http.MethodDelete, item, "delete", "delete"+ns+kind, "delete"+article(kind)+kind, b.gvk, o.delete, modelName(nameDeleteOptions), mediaTypes(), ok(deleted), accepted(deleted))
		}
	}
	subs := append([]string{}, res.Subresources...)
	if res.Status {
		subs = append(subs, "status")
	}
	if res.Scale {
		subs = append(subs, "scale")
	}
	seen := map[string]bool{}
	for _, sub := range subs {
		if seen[sub] {
			continue
		}
		seen[sub] = true
		gvk, verbs, known := subresourceInfo(sub, b.gvk)
		if !known {
			continue
		}
		model := b.model
		if gvk != b.gvk {
			name, err := b.nameOf(gvk)
			if err != nil {
				return nil, fmt.Errorf("subresource %s of %s: %w", sub, res.Resource, err)
			}
			model = modelName(name)
		}
		b.addSubresource(item+"/"+sub, ns, sub, gvk, model, verbs)
	}
	return b.routes, nil
}

func (b *routeBuilder) addSubresource(path, ns, sub string, gvk schema.GroupVersionKind, model modelName, verbs []string) {
	kind := b.res.Kind
	title := strings.ToUpper(sub[:1]) + sub[1:]
	ok := response{http.StatusOK, "OK", model}
	created := response{http.StatusCreated, "Created", model}
	accepted := response{http.StatusAccepted, "Accepted", model}
	o := b.opts
	for _, verb := range verbs {
		switch verb {
		case "get":
			b.add(http.MethodGet, path, "get", "read"+ns+kind+title, "read "+sub+" of the specified "+kind, gvk, nil, nil, mediaTypes(), ok)
		case "update":
			b.add(http.MethodPut, path, "put", "replace"+ns+kind+title, "replace "+sub+" of the specified "+kind, gvk, o.update, model, mediaTypes(), ok, created)
		case "patch":
			b.add(http.MethodPatch, path, "patch", "patch"+ns+kind+title, "partially update "+sub+" of the specified "+kind, gvk, o.patch, modelName(namePatch), mediaTypes(), ok, created)
		case "create":
			b.add(http.MethodPost, path, "post", "create"+ns+kind+title, "create "+sub+" of"+article(kind)+kind, gvk, o.create, model, mediaTypes(), ok, created, accepted)
		}
	}
}

// resourcesRoute is the group version's resource list (discovery), which
// upstream's documents include.
func resourcesRoute(group, version string) common.Route {
	return &route{
		method: http.MethodGet, path: "/" + gvPath(group, version) + "/", operation: "getAPIResources",
		doc: "get available resources", consumes: mediaTypes(), produces: mediaTypes(),
		writes: modelName(nameResourceList), responses: []common.StatusCodeResponse{response{http.StatusOK, "OK", modelName(nameResourceList)}},
	}
}

// operationIDAndTags turns an operation name and path into kube-apiserver's
// operation ID ("listAppsV1NamespacedDeployment") and tag ("apps_v1").
func operationIDAndTags(r common.Route) (string, []string, error) {
	op := r.OperationName()
	// The shortest verb an operation name starts with wins, so
	// "deletecollectionX" becomes "delete" + "CollectionX", as in upstream's
	// operation IDs.
	verb := ""
	for _, v := range []string{"get", "log", "read", "replace", "patch", "delete", "deletecollection", "watch", "connect", "proxy", "list", "create"} {
		if strings.HasPrefix(op, v) && (verb == "" || len(v) < len(verb)) {
			verb = v
		}
	}
	if verb == "" {
		return "", nil, fmt.Errorf("operation %q of %s does not start with a verb", op, r.Path())
	}
	rest := op[len(verb):]
	parts := strings.Split(strings.Trim(r.Path(), "/"), "/")
	if len(parts) >= 1 && parts[0] == "api" {
		parts = append([]string{"apis", "core"}, parts[1:]...)
	}
	var tags []string
	prefix := verb
	if len(parts) >= 2 && parts[0] == "apis" {
		group := strings.TrimSuffix(parts[1], ".k8s.io")
		prefix += camel(group, true)
		tag := camel(group, false)
		if len(parts) > 2 {
			prefix += camel(parts[2], true)
			tag += "_" + camel(parts[2], false)
		}
		tags = append(tags, tag)
	}
	return prefix + camel(rest, true), tags, nil
}

// camel drops characters an operation ID cannot hold and capitalises the
// letter after each of them ("rbac.authorization" → "rbacAuthorization").
func camel(s string, capitalizeFirst bool) string {
	var buf bytes.Buffer
	up := capitalizeFirst
	for i, r := range s {
		if unicode.IsLetter(r) || r == '_' || (i != 0 && unicode.IsDigit(r)) {
			if up {
				r = unicode.ToUpper(r)
				up = false
			}
			buf.WriteRune(r)
		} else {
			up = true
		}
	}
	return buf.String()
}
