package server

import (
	"mime"
	"net/http"
	"strings"
)

const (
	mediaJSON     = "application/json"
	mediaYAML     = "application/yaml"
	mediaProtobuf = "application/vnd.kubernetes.protobuf"
)

// output is the representation a client asked for with Accept.
type output struct {
	media string // mediaJSON, mediaYAML or mediaProtobuf
	// as is "", "Table", "PartialObjectMetadata" or
	// "PartialObjectMetadataList" (meta.k8s.io transformations).
	as      string
	version string // meta.k8s.io version of the transformation (v1, v1beta1)
}

// negotiate picks the first representation in Accept that pgkube can serve,
// in the client's order of preference. ok is false when none is acceptable
// (406), as kube-apiserver answers rather than sending something else.
func negotiate(r *http.Request, noProtobuf bool) (output, bool) {
	accept := r.Header.Get("Accept")
	if strings.TrimSpace(accept) == "" {
		return output{media: mediaJSON}, true
	}
	for _, part := range strings.Split(accept, ",") {
		mt, params, err := mime.ParseMediaType(strings.TrimSpace(part))
		if err != nil {
			continue
		}
		var out output
		switch mt {
		case mediaJSON, "*/*", "application/*":
			out.media = mediaJSON
		case mediaYAML:
			out.media = mediaYAML
		case mediaProtobuf:
			if noProtobuf {
				continue // custom resources have no protobuf form
			}
			out.media = mediaProtobuf
		default:
			continue
		}
		if as := params["as"]; as != "" {
			if params["g"] != "meta.k8s.io" || (params["v"] != "v1" && params["v"] != "v1beta1") {
				continue
			}
			switch as {
			case "Table":
				if out.media == mediaProtobuf {
					continue // Table has no protobuf form
				}
			case "PartialObjectMetadata", "PartialObjectMetadataList":
			default:
				continue
			}
			out.as, out.version = as, params["v"]
		}
		return out, true
	}
	return output{}, false
}

// contentType returns the media type of a request body, defaulting to JSON.
func contentType(r *http.Request) string {
	ct := r.Header.Get("Content-Type")
	if ct == "" {
		return mediaJSON
	}
	mt, _, err := mime.ParseMediaType(ct)
	if err != nil {
		return ct
	}
	return mt
}
