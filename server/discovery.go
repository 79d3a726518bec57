package server

import (
	"encoding/json"
	"mime"
	"net/http"
	"strings"

	"github.com/pgkube/pgkube/registry"
	apidiscoveryv2 "k8s.io/api/apidiscovery/v2"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// Discovery documents are derived from the registry on each request: they
// are small, and a CRD added by another process shows up without a cache to
// invalidate.

// wantsAggregated returns the apidiscovery.k8s.io version (v2, or v2beta1
// for kubectl 1.27) when the client asked for aggregated discovery before
// plain JSON, else "".
func wantsAggregated(r *http.Request) string {
	for _, part := range strings.Split(r.Header.Get("Accept"), ",") {
		mt, params, err := mime.ParseMediaType(strings.TrimSpace(part))
		if err != nil {
			continue
		}
		if mt == mediaJSON && params["g"] == "apidiscovery.k8s.io" && params["as"] == "APIGroupDiscoveryList" &&
			(params["v"] == "v2" || params["v"] == "v2beta1") {
			return params["v"]
		}
		if mt == mediaJSON || mt == "*/*" {
			return ""
		}
	}
	return ""
}

func (s *Server) discoveryAPI(w http.ResponseWriter, r *http.Request) {
	if v := wantsAggregated(r); v != "" {
		s.aggregated(w, r, true, v)
		return
	}
	v := metav1.APIVersions{Versions: []string{"v1"}, ServerAddressByClientCIDRs: []metav1.ServerAddressByClientCIDR{
		{ClientCIDR: "0.0.0.0/0", ServerAddress: r.Host}}}
	v.Kind, v.APIVersion = "APIVersions", ""
	writeJSON(w, http.StatusOK, &v)
}

func (s *Server) apiGroups(r *http.Request) []metav1.APIGroup {
	var out []metav1.APIGroup
	for _, g := range s.view(r).Groups() {
		if g.Name == "" {
			continue
		}
		ag := metav1.APIGroup{Name: g.Name}
		for _, v := range g.Versions {
			ag.Versions = append(ag.Versions, metav1.GroupVersionForDiscovery{GroupVersion: g.Name + "/" + v, Version: v})
		}
		ag.PreferredVersion = ag.Versions[0]
		out = append(out, ag)
	}
	return out
}

func (s *Server) discoveryAPIs(w http.ResponseWriter, r *http.Request) {
	if v := wantsAggregated(r); v != "" {
		s.aggregated(w, r, false, v)
		return
	}
	l := metav1.APIGroupList{Groups: s.apiGroups(r)}
	l.Kind, l.APIVersion = "APIGroupList", "v1"
	writeJSON(w, http.StatusOK, &l)
}

func (s *Server) discoveryGroup(w http.ResponseWriter, r *http.Request, group string) {
	for _, g := range s.apiGroups(r) {
		if g.Name == group {
			g.Kind, g.APIVersion = "APIGroup", "v1"
			writeJSON(w, http.StatusOK, &g)
			return
		}
	}
	writeStatusError(w, notFoundPath(r))
}

func (s *Server) discoveryGroupVersion(w http.ResponseWriter, r *http.Request, group, version string) {
	gv := version
	if group != "" {
		gv = group + "/" + version
	}
	l := metav1.APIResourceList{GroupVersion: gv}
	l.Kind, l.APIVersion = "APIResourceList", "v1"
	for _, res := range s.view(r).Resources(group, version) {
		l.APIResources = append(l.APIResources, metav1.APIResource{
			Name: res.Resource, SingularName: res.Singular, Namespaced: res.Namespaced, Kind: res.Kind,
			Verbs: res.Verbs(), ShortNames: res.ShortNames, Categories: res.Categories,
			StorageVersionHash: storageVersionHash(res),
		})
		for _, sub := range subresourcesOf(res) {
			l.APIResources = append(l.APIResources, metav1.APIResource{
				Name: res.Resource + "/" + sub.name, Namespaced: res.Namespaced, Kind: sub.kind,
				Group: sub.group, Version: sub.version, Verbs: sub.verbs,
			})
		}
	}
	writeJSON(w, http.StatusOK, &l)
}

type subresource struct {
	name, kind, group, version string
	verbs                      []string
}

func subresourcesOf(res *registry.Resource) []subresource {
	var out []subresource
	if res.Status {
		out = append(out, subresource{name: "status", kind: res.Kind, verbs: []string{"get", "patch", "update"}})
	}
	if res.Scale != nil {
		out = append(out, subresource{name: "scale", kind: "Scale", group: "autoscaling", version: "v1", verbs: []string{"get", "patch", "update"}})
	}
	for _, name := range res.Subresources {
		h, ok := subresourceHandlers[name]
		if !ok {
			continue
		}
		sr := subresource{name: name, kind: res.Kind, verbs: h.verbs}
		if k, ok := subresourceKinds[name]; ok {
			sr.kind = k.Kind
			// Discovery names a group and version only when they differ
			// from the parent's.
			if gv := k.GroupVersion(); gv != res.GroupVersion() && gv.Group != "" {
				sr.group, sr.version = gv.Group, gv.Version
			}
		}
		out = append(out, sr)
	}
	return out
}

// storageVersionHash lets clients notice a change of storage version; it
// only has to be stable per group/version/kind.
func storageVersionHash(res *registry.Resource) string {
	h := uint32(2166136261)
	for _, b := range []byte(res.Group + "/" + res.Version + "/" + res.Kind) {
		h = (h ^ uint32(b)) * 16777619
	}
	const digits = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
	out := make([]byte, 11)
	for i := range out {
		out[i] = digits[h%64]
		h = h/64 + uint32(i)*2654435761
	}
	return string(out)
}

// aggregated serves apidiscovery.k8s.io/v2 for /api (core) or /apis.
// v2beta1 has the same shape, so one document serves both versions.
func (s *Server) aggregated(w http.ResponseWriter, r *http.Request, core bool, version string) {
	l := apidiscoveryv2.APIGroupDiscoveryList{}
	l.Kind, l.APIVersion = "APIGroupDiscoveryList", "apidiscovery.k8s.io/"+version
	for _, g := range s.view(r).Groups() {
		if (g.Name == "") != core {
			continue
		}
		gd := apidiscoveryv2.APIGroupDiscovery{ObjectMeta: metav1.ObjectMeta{Name: g.Name}}
		for _, v := range g.Versions {
			vd := apidiscoveryv2.APIVersionDiscovery{Version: v, Freshness: apidiscoveryv2.DiscoveryFreshnessCurrent}
			for _, res := range s.view(r).Resources(g.Name, v) {
				scope := apidiscoveryv2.ScopeCluster
				if res.Namespaced {
					scope = apidiscoveryv2.ScopeNamespace
				}
				rd := apidiscoveryv2.APIResourceDiscovery{
					Resource: res.Resource, SingularResource: res.Singular, Scope: scope,
					ResponseKind: &metav1.GroupVersionKind{Group: res.Group, Version: res.Version, Kind: res.Kind},
					Verbs:        res.Verbs(), ShortNames: res.ShortNames, Categories: res.Categories,
				}
				for _, sub := range subresourcesOf(res) {
					rk := &metav1.GroupVersionKind{Group: sub.group, Version: sub.version, Kind: sub.kind}
					if sub.group == "" && sub.version == "" {
						rk.Group, rk.Version = res.Group, res.Version
					}
					rd.Subresources = append(rd.Subresources, apidiscoveryv2.APISubresourceDiscovery{
						Subresource: sub.name, ResponseKind: rk, Verbs: sub.verbs})
				}
				vd.Resources = append(vd.Resources, rd)
			}
			gd.Versions = append(gd.Versions, vd)
		}
		l.Items = append(l.Items, gd)
	}
	body, err := json.Marshal(&l)
	if err != nil {
		writeStatusError(w, toStatus(err, schemaGR("", ""), ""))
		return
	}
	w.Header().Set("Vary", "Accept")
	writeBytes(w, http.StatusOK, "application/json;g=apidiscovery.k8s.io;v="+version+";as=APIGroupDiscoveryList", body)
}
