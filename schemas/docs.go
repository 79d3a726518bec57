package schemas

import (
	"encoding/json"
	"fmt"
	"net/http"

	openapiv2 "github.com/google/gnostic-models/openapiv2"
	"google.golang.org/protobuf/proto"
	"k8s.io/kube-openapi/pkg/builder"
	"k8s.io/kube-openapi/pkg/builder3"
	"k8s.io/kube-openapi/pkg/common"
	"k8s.io/kube-openapi/pkg/schemamutation"
	"k8s.io/kube-openapi/pkg/spec3"
	"k8s.io/kube-openapi/pkg/validation/spec"
)

const bearerDescription = "Bearer Token authentication"

func (s *snapshot) info() *spec.Info {
	return &spec.Info{InfoProps: spec.InfoProps{Title: "Kubernetes", Version: s.base.version}}
}

func (s *snapshot) buildV2JSON() ([]byte, error) {
	routes, err := s.routes("")
	if err != nil {
		return nil, err
	}
	cfg := &common.Config{
		ProtocolList: []string{"https"},
		Info:         s.info(),
		CommonResponses: map[int]spec.Response{
			http.StatusUnauthorized: {ResponseProps: spec.ResponseProps{Description: "Unauthorized"}},
		},
		GetDefinitions:                 func(common.ReferenceCallback) map[string]common.OpenAPIDefinition { return s.definitions(false) },
		GetDefinitionName:              s.definitionName,
		GetOperationIDAndTagsFromRoute: operationIDAndTags,
		SecurityDefinitions: &spec.SecurityDefinitions{"BearerToken": &spec.SecurityScheme{
			SecuritySchemeProps: spec.SecuritySchemeProps{Type: "apiKey", Name: "authorization", In: "header", Description: bearerDescription},
		}},
		DefaultSecurity: []map[string][]string{{"BearerToken": {}}},
		PostProcessSpec: pruneDefaults,
	}
	sw, err := builder.BuildOpenAPISpecFromRoutes(routes, cfg)
	if err != nil {
		return nil, fmt.Errorf("building /openapi/v2: %w", err)
	}
	body, err := json.Marshal(sw)
	if err != nil {
		return nil, fmt.Errorf("encoding /openapi/v2: %w", err)
	}
	return body, nil
}

// pruneDefaults drops defaults from /openapi/v2, as kube-apiserver does:
// clients of v2 (kubectl's client-side apply among them) would otherwise
// write them into objects.
func pruneDefaults(sw *spec.Swagger) (*spec.Swagger, error) {
	w := schemamutation.Walker{
		SchemaCallback: func(s *spec.Schema) *spec.Schema {
			if s.Default == nil {
				return s
			}
			c := *s
			c.Default = nil
			return &c
		},
		RefCallback: schemamutation.RefCallbackNoop,
	}
	defs := make(spec.Definitions, len(sw.Definitions))
	for name, d := range sw.Definitions {
		defs[name] = *w.WalkSchema(&d)
	}
	sw.Definitions = defs
	return sw, nil
}

func (s *snapshot) buildV2Proto() ([]byte, error) {
	body, _, err := s.v2JSON.get()
	if err != nil {
		return nil, err
	}
	doc, err := openapiv2.ParseDocument(body)
	if err != nil {
		return nil, fmt.Errorf("converting /openapi/v2 to protobuf: %w", err)
	}
	out, err := proto.Marshal(doc)
	if err != nil {
		return nil, fmt.Errorf("encoding /openapi/v2 as protobuf: %w", err)
	}
	return out, nil
}

func (s *snapshot) buildV3(gv string) ([]byte, error) {
	routes, err := s.routes(gv)
	if err != nil {
		return nil, err
	}
	var group, version string
	for _, r := range s.resources {
		if gvPath(r.Group, r.Version) == gv {
			group, version = r.Group, r.Version
			break
		}
	}
	cfg := &common.OpenAPIV3Config{
		Info: s.info(),
		CommonResponses: map[int]*spec3.Response{
			http.StatusUnauthorized: {ResponseProps: spec3.ResponseProps{Description: "Unauthorized"}},
		},
		Definitions:                    s.definitions(true),
		GetDefinitionName:              s.scopedDefinitionName(group, version),
		GetOperationIDAndTagsFromRoute: operationIDAndTags,
		SecuritySchemes: spec3.SecuritySchemes{"BearerToken": &spec3.SecurityScheme{
			SecuritySchemeProps: spec3.SecuritySchemeProps{Type: "apiKey", Name: "authorization", In: "header", Description: bearerDescription},
		}},
	}
	doc, err := builder3.BuildOpenAPISpecFromRoutes(routes, cfg)
	if err != nil {
		return nil, fmt.Errorf("building /openapi/v3/%s: %w", gv, err)
	}
	body, err := json.Marshal(doc)
	if err != nil {
		return nil, fmt.Errorf("encoding /openapi/v3/%s: %w", gv, err)
	}
	return body, nil
}

// buildV3Index lists each group version's document under a URL that names
// its hash, so clients may cache documents for as long as the hash holds.
func (s *snapshot) buildV3Index() ([]byte, error) {
	type entry struct {
		ServerRelativeURL string `json:"serverRelativeURL"`
	}
	paths := map[string]entry{}
	for p, d := range s.v3 {
		body, _, err := d.get()
		if err != nil {
			return nil, err
		}
		paths[p] = entry{ServerRelativeURL: "/openapi/v3/" + p + "?hash=" + hash(body)}
	}
	body, err := json.Marshal(map[string]any{"paths": paths})
	if err != nil {
		return nil, fmt.Errorf("encoding /openapi/v3: %w", err)
	}
	return body, nil
}
