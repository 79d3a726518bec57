package server

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"

	"github.com/pgkube/pgkube/registry"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/runtime/serializer"
	"k8s.io/apimachinery/pkg/runtime/serializer/protobuf"
	k8sjson "sigs.k8s.io/json"
	"sigs.k8s.io/yaml"
)

// maxBodyBytes is kube-apiserver's limit on a request body.
const maxBodyBytes = 3 * 1024 * 1024

// codecs encodes and decodes the registry's typed objects.
type codecs struct {
	scheme  *runtime.Scheme
	factory serializer.CodecFactory
	proto   *protobuf.Serializer
}

func newCodecs(scheme *runtime.Scheme) *codecs {
	return &codecs{
		scheme:  scheme,
		factory: serializer.NewCodecFactory(scheme, serializer.EnableStrict),
		proto:   protobuf.NewSerializer(scheme, scheme),
	}
}

// readBody reads a request body within kube-apiserver's size limit.
func readBody(r *http.Request) ([]byte, error) {
	if n := r.ContentLength; n > maxBodyBytes {
		return nil, apierrors.NewRequestEntityTooLargeError(fmt.Sprintf("limit is %d", maxBodyBytes))
	} else if n > 0 {
		// The usual case: read exactly the announced length, in one buffer.
		body := make([]byte, n)
		if _, err := io.ReadFull(r.Body, body); err != nil {
			return nil, badRequest("reading the request body: %v", err)
		}
		return body, nil
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, maxBodyBytes+1))
	if err != nil {
		return nil, badRequest("reading the request body: %v", err)
	}
	if len(body) > maxBodyBytes {
		return nil, apierrors.NewRequestEntityTooLargeError(fmt.Sprintf("limit is %d", maxBodyBytes))
	}
	return body, nil
}

// decodeResult is a decoded body plus what strict decoding found.
type decodeResult struct {
	obj      runtime.Object
	warnings []string // unknown or duplicate fields
}

// decode turns a request body into a typed object of the expected kind. The
// body's apiVersion and kind, when given, must be the URL's.
func (c *codecs) decode(body []byte, media string, want schema.GroupVersionKind) (decodeResult, error) {
	if !c.scheme.Recognizes(want) {
		return c.decodeCustom(body, media, want)
	}
	if media == mediaJSON {
		return c.decodeJSON(body, want)
	}
	info, ok := runtime.SerializerInfoForMediaType(c.factory.SupportedMediaTypes(), media)
	if !ok {
		return decodeResult{}, unsupportedMediaType(media)
	}
	if len(bytes.TrimSpace(body)) == 0 {
		return decodeResult{}, badRequest("the request body is empty: expected a %s", want.Kind)
	}
	dec := info.StrictSerializer
	if dec == nil {
		dec = info.Serializer
	}
	into, err := c.scheme.New(want)
	if err != nil {
		return decodeResult{}, apierrors.NewInternalError(err)
	}
	obj, gvk, err := dec.Decode(body, &want, into)
	var res decodeResult
	if err != nil {
		if runtime.IsStrictDecodingError(err) && obj != nil {
			if sde, ok := runtime.AsStrictDecodingError(err); ok {
				for _, e := range sde.Errors() {
					res.warnings = append(res.warnings, e.Error())
				}
			} else {
				res.warnings = []string{err.Error()}
			}
		} else {
			return decodeResult{}, decodeError(err, want)
		}
	}
	if gvk != nil && (gvk.Kind != want.Kind || gvk.GroupVersion() != want.GroupVersion()) {
		return decodeResult{}, badRequest("the object provided is of kind %q in version %q, but the URL expects kind %q in version %q",
			gvk.Kind, gvk.GroupVersion().String(), want.Kind, want.GroupVersion().String())
	}
	if obj != into {
		return decodeResult{}, badRequest("the object provided could not be decoded as a %s", want.Kind)
	}
	setGVK(obj, want)
	res.obj = obj
	return res, nil
}

// decodeJSON is the JSON path in one pass: the typed object, its strict
// problems, and its apiVersion/kind, which must be the URL's when given.
// (The generic serializer parses the body twice: once to find the kind.)
func (c *codecs) decodeJSON(body []byte, want schema.GroupVersionKind) (decodeResult, error) {
	if len(bytes.TrimSpace(body)) == 0 {
		return decodeResult{}, badRequest("the request body is empty: expected a %s", want.Kind)
	}
	obj, err := c.scheme.New(want)
	if err != nil {
		return decodeResult{}, apierrors.NewInternalError(err)
	}
	strict, err := k8sjson.UnmarshalStrict(body, obj, k8sjson.DisallowDuplicateFields, k8sjson.DisallowUnknownFields)
	if err != nil {
		return decodeResult{}, decodeError(err, want)
	}
	got := obj.GetObjectKind().GroupVersionKind()
	if (got.Kind != "" && got.Kind != want.Kind) || (got.Version != "" && got.GroupVersion() != want.GroupVersion()) {
		return decodeResult{}, badRequest("the object provided is of kind %q in version %q, but the URL expects kind %q in version %q",
			got.Kind, got.GroupVersion().String(), want.Kind, want.GroupVersion().String())
	}
	setGVK(obj, want)
	res := decodeResult{obj: obj}
	for _, e := range strict {
		res.warnings = append(res.warnings, e.Error())
	}
	return res, nil
}

// decodeCustom reads a custom resource: JSON or YAML into an unstructured
// object. Custom resources have no protobuf form, as upstream. Fields are
// judged later, against the CRD's schema.
func (c *codecs) decodeCustom(body []byte, media string, want schema.GroupVersionKind) (decodeResult, error) {
	if len(bytes.TrimSpace(body)) == 0 {
		return decodeResult{}, badRequest("the request body is empty: expected a %s", want.Kind)
	}
	switch media {
	case mediaJSON:
	case mediaYAML:
		j, err := yaml.YAMLToJSON(body)
		if err != nil {
			return decodeResult{}, decodeError(err, want)
		}
		body = j
	default:
		return decodeResult{}, &apierrors.StatusError{ErrStatus: metav1.Status{
			Status: metav1.StatusFailure, Code: http.StatusUnsupportedMediaType, Reason: metav1.StatusReasonUnsupportedMediaType,
			Message: fmt.Sprintf("the body of the request was in an unknown format - accepted media types include: %s, %s", mediaJSON, mediaYAML),
		}}
	}
	var m map[string]any
	strict, err := k8sjson.UnmarshalStrict(body, &m, k8sjson.DisallowDuplicateFields)
	if err != nil {
		return decodeResult{}, decodeError(err, want)
	}
	if m == nil {
		return decodeResult{}, badRequest("the object provided could not be decoded as a %s: expected a JSON object", want.Kind)
	}
	u := &unstructured.Unstructured{Object: m}
	got := u.GroupVersionKind()
	if (got.Kind != "" && got.Kind != want.Kind) || (u.GetAPIVersion() != "" && got.GroupVersion() != want.GroupVersion()) {
		return decodeResult{}, badRequest("the object provided is of kind %q in version %q, but the URL expects kind %q in version %q",
			got.Kind, got.GroupVersion().String(), want.Kind, want.GroupVersion().String())
	}
	if md, ok := m["metadata"]; ok && md != nil {
		if _, ok := md.(map[string]any); !ok {
			return decodeResult{}, badRequest("%s in version %q cannot be handled as a %s: metadata must be an object", want.Kind, want.GroupVersion(), want.Kind)
		}
		// Typed metadata catches wrong types (labels that are not strings).
		var om metav1.ObjectMeta
		raw, _ := json.Marshal(md)
		if err := json.Unmarshal(raw, &om); err != nil {
			return decodeResult{}, decodeError(err, want)
		}
	}
	u.SetGroupVersionKind(want)
	res := decodeResult{obj: u}
	for _, e := range strict {
		res.warnings = append(res.warnings, e.Error())
	}
	return res, nil
}

// decodeError words a decoding failure as kube-apiserver does: the object
// could not be handled as the kind the URL names.
func decodeError(err error, want schema.GroupVersionKind) error {
	msg := err.Error()
	if strings.Contains(msg, "no kind") || strings.Contains(msg, "is registered for version") {
		return badRequest("%s", msg)
	}
	return badRequest("%s in version %q cannot be handled as a %s: %s", want.Kind, want.Version, want.Kind, msg)
}

func setGVK(obj runtime.Object, gvk schema.GroupVersionKind) {
	obj.GetObjectKind().SetGroupVersionKind(gvk)
}

// decodeStored reads stored JSON into a fresh typed object of the storage
// kind. Stored bytes were written by pgkube, so they are trusted to decode.
func (c *codecs) decodeStored(data []byte, gvk schema.GroupVersionKind) (runtime.Object, error) {
	if !c.scheme.Recognizes(gvk) {
		var m map[string]any
		if err := k8sjson.UnmarshalCaseSensitivePreserveInts(data, &m); err != nil {
			return nil, fmt.Errorf("decode stored %s: %w", gvk.Kind, err)
		}
		u := &unstructured.Unstructured{Object: m}
		u.SetGroupVersionKind(gvk)
		return u, nil
	}
	obj, err := c.scheme.New(gvk)
	if err != nil {
		return nil, err
	}
	if err := k8sjson.UnmarshalCaseSensitivePreserveInts(data, obj); err != nil {
		return nil, fmt.Errorf("decode stored %s: %w", gvk.Kind, err)
	}
	setGVK(obj, gvk)
	return obj, nil
}

// encode renders a typed object in the negotiated media type.
func (c *codecs) encode(obj runtime.Object, media string) ([]byte, error) {
	switch media {
	case mediaProtobuf:
		if _, ok := obj.(runtime.Unstructured); ok {
			return nil, apierrors.NewGenericServerResponse(http.StatusNotAcceptable, "", schema.GroupResource{}, "",
				"only the following media types are accepted: application/json, application/yaml", 0, false)
		}
		var buf bytes.Buffer
		if err := c.proto.Encode(obj, &buf); err != nil {
			return nil, err
		}
		return buf.Bytes(), nil
	case mediaYAML:
		j, err := json.Marshal(obj)
		if err != nil {
			return nil, err
		}
		return yaml.JSONToYAML(j)
	default:
		return json.Marshal(obj)
	}
}

// writeBytes sends an already encoded body.
func writeBytes(w http.ResponseWriter, code int, media string, body []byte) {
	w.Header().Set("Content-Type", media)
	w.Header().Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(code)
	w.Write(body) //nolint:errcheck // the client went away
}

// writeStatusError sends an error as a Status in JSON, which every client
// reads whatever it asked for.
func writeStatusError(w http.ResponseWriter, err *apierrors.StatusError) {
	st := err.ErrStatus
	st.Kind, st.APIVersion = "Status", "v1"
	if st.Status == "" {
		st.Status = metav1.StatusFailure
	}
	if st.Code == 0 {
		st.Code = http.StatusInternalServerError
	}
	body, _ := json.Marshal(&st)
	if st.Code == http.StatusTooManyRequests || st.Reason == metav1.StatusReasonServerTimeout {
		if st.Details != nil && st.Details.RetryAfterSeconds > 0 {
			w.Header().Set("Retry-After", strconv.Itoa(int(st.Details.RetryAfterSeconds)))
		}
	}
	writeBytes(w, int(st.Code), mediaJSON, body)
}

func unsupportedMediaType(media string) *apierrors.StatusError {
	return &apierrors.StatusError{ErrStatus: metav1.Status{
		Status: metav1.StatusFailure, Code: http.StatusUnsupportedMediaType, Reason: metav1.StatusReasonUnsupportedMediaType,
		Message: fmt.Sprintf("the body of the request was in an unknown format - accepted media types include: %s",
			"application/json, application/yaml, application/vnd.kubernetes.protobuf"),
		Details: &metav1.StatusDetails{Causes: []metav1.StatusCause{{Type: metav1.CauseTypeFieldValueNotSupported, Message: media}}},
	}}
}

// storageGVK is the kind stored bytes of a resource decode into.
func storageGVK(reg *registry.View, res *registry.Resource) schema.GroupVersionKind {
	if res.StorageResource == "" {
		return res.GVK()
	}
	if res.CRD != "" {
		return schema.GroupVersionKind{Group: res.Group, Version: res.StorageVersion, Kind: res.Kind}
	}
	for _, r := range reg.ByStorageKey(res.StorageResource) {
		if r.StorageResource == "" {
			return r.GVK()
		}
	}
	return res.GVK()
}
