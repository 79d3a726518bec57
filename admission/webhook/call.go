package webhook

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"strings"
	"time"

	admcel "github.com/pgkube/pgkube/admission/cel"
	admissionv1 "k8s.io/api/admission/v1"
	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	authenticationv1 "k8s.io/api/authentication/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/uuid"
)

// callError is a failure to reach a webhook or to understand its answer:
// the webhook's failurePolicy decides whether it rejects the request.
// Its text is kube-apiserver's, which clients and tests match on.
type callError struct {
	webhook string
	reason  error
	status  *apierrors.StatusError
}

func (e *callError) Error() string {
	return fmt.Sprintf("failed calling webhook %q: %v", e.webhook, e.reason)
}

func (e *callError) Unwrap() error { return e.reason }

// maxResponseBytes bounds what is read of a webhook's answer, so a
// misbehaving webhook cannot make pgkube buffer without end.
const maxResponseBytes = 32 << 20

// review is what the webhooks of one admission call are sent. The object
// encodings are shared by webhooks until a mutation changes the object.
type review struct {
	req       *admcel.Request
	object    []byte
	oldObject []byte
	encoded   bool
}

func (r *review) objectChanged() {
	r.encoded = false
	r.req.ObjectChanged()
}

func (r *review) encode() error {
	if r.encoded {
		return nil
	}
	var err error
	if r.object, err = encodeObject(r.req.Attrs.Object, r.req.Kind); err != nil {
		return err
	}
	if r.oldObject == nil {
		if r.oldObject, err = encodeObject(r.req.Attrs.OldObject, r.req.Kind); err != nil {
			return err
		}
	}
	r.encoded = true
	return nil
}

// encodeObject is obj's JSON with apiVersion and kind, which webhooks rely
// on and typed objects in memory do not always carry.
func encodeObject(obj runtime.Object, gvk schema.GroupVersionKind) ([]byte, error) {
	if obj == nil {
		return nil, nil
	}
	if _, ok := obj.(*unstructured.Unstructured); !ok && obj.GetObjectKind().GroupVersionKind().Kind == "" {
		obj = obj.DeepCopyObject()
		obj.GetObjectKind().SetGroupVersionKind(gvk)
	}
	return json.Marshal(obj)
}

func (w *Webhooks) newUID() types.UID {
	if w.opts.NewUID != nil {
		return types.UID(w.opts.NewUID())
	}
	return uuid.NewUUID()
}

// call posts one AdmissionReview to h and returns its verified response.
func (w *Webhooks) call(ctx context.Context, h *hook, rv *review, mutating bool) (*admissionv1.AdmissionResponse, error) {
	a := rv.req.Attrs
	if a.DryRun {
		if h.sideEffects == nil {
			return nil, &callError{webhook: h.name, reason: errors.New("Webhook SideEffects is nil"),
				status: apierrors.NewBadRequest("Webhook SideEffects is nil")}
		}
		if se := *h.sideEffects; se != admissionregistrationv1.SideEffectClassNone && se != admissionregistrationv1.SideEffectClassNoneOnDryRun {
			return nil, apierrors.NewBadRequest(fmt.Sprintf("admission webhook %q does not support dry run", h.name))
		}
	}
	if !h.acceptsV1 {
		return nil, &callError{webhook: h.name,
			reason: errors.New("could not create admission objects: webhook does not accept known AdmissionReview versions (v1, v1beta1)"),
			status: apierrors.NewBadRequest("error creating admission objects")}
	}
	if err := rv.encode(); err != nil {
		return nil, &callError{webhook: h.name, reason: fmt.Errorf("could not create admission objects: %w", err),
			status: apierrors.NewBadRequest("error creating admission objects")}
	}
	if h.clientErr != nil {
		return nil, clientError(h)
	}

	uid := w.newUID()
	body, err := json.Marshal(w.admissionReview(uid, rv))
	if err != nil {
		return nil, &callError{webhook: h.name, reason: fmt.Errorf("could not create admission objects: %w", err),
			status: apierrors.NewBadRequest("error creating admission objects")}
	}

	ctx, cancel := context.WithTimeout(ctx, h.timeout)
	defer cancel()
	target := h.url
	if deadline, ok := ctx.Deadline(); ok {
		// The webhook learns how long it has, in whole seconds rounded up.
		if left := time.Until(deadline); left > 0 {
			if t := left.Truncate(time.Second); t != left {
				left = t + time.Second
			}
			target += "?timeout=" + left.String()
		}
	}
	httpReq, err := http.NewRequestWithContext(ctx, http.MethodPost, target, bytes.NewReader(body))
	if err != nil {
		return nil, &callError{webhook: h.name, reason: fmt.Errorf("failed to call webhook: %w", err),
			status: apierrors.NewServiceUnavailable("error calling webhook")}
	}
	httpReq.Header.Set("Content-Type", "application/json")
	httpReq.Header.Set("Accept", "application/json, */*")
	resp, err := h.client.Do(httpReq)
	if err != nil {
		return nil, &callError{webhook: h.name, reason: fmt.Errorf("failed to call webhook: %w", err),
			status: apierrors.NewServiceUnavailable("error calling webhook")}
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxResponseBytes))
	if err != nil {
		return nil, &callError{webhook: h.name, reason: fmt.Errorf("failed to call webhook: %w", err),
			status: apierrors.NewServiceUnavailable("error calling webhook")}
	}
	if resp.StatusCode < 200 || resp.StatusCode > 206 {
		se := responseError(resp, data)
		return nil, &callError{webhook: h.name, reason: fmt.Errorf("failed to call webhook: %w", se), status: se}
	}

	var out admissionv1.AdmissionReview
	if err := json.Unmarshal(data, &out); err != nil {
		return nil, &callError{webhook: h.name, reason: fmt.Errorf("failed to call webhook: %w", err),
			status: apierrors.NewServiceUnavailable("error calling webhook")}
	}
	if err := verify(uid, mutating, &out); err != nil {
		return nil, &callError{webhook: h.name, reason: fmt.Errorf("received invalid webhook response: %w", err),
			status: apierrors.NewServiceUnavailable("error validating webhook response")}
	}
	for _, warning := range out.Response.Warnings {
		w.opts.Warn(ctx, warning)
	}
	if !out.Response.Allowed {
		return nil, denied(h.name, out.Response.Result)
	}
	return out.Response, nil
}

func (w *Webhooks) admissionReview(uid types.UID, rv *review) *admissionv1.AdmissionReview {
	req := rv.req
	a := req.Attrs
	name, userUID, groups, extra := req.UserInfo()
	user := authenticationv1.UserInfo{Username: name, UID: userUID, Groups: groups,
		Extra: make(map[string]authenticationv1.ExtraValue, len(extra))}
	for k, v := range extra {
		user.Extra[k] = v
	}
	kind := metav1.GroupVersionKind{Group: req.Kind.Group, Version: req.Kind.Version, Kind: req.Kind.Kind}
	resource := metav1.GroupVersionResource{Group: a.Group, Version: a.Version, Resource: a.Resource}
	dryRun := a.DryRun
	var options runtime.RawExtension
	if o := req.Options(); o != nil {
		options.Object = o
	}
	return &admissionv1.AdmissionReview{
		TypeMeta: metav1.TypeMeta{APIVersion: admissionv1.SchemeGroupVersion.String(), Kind: "AdmissionReview"},
		Request: &admissionv1.AdmissionRequest{
			UID:                uid,
			Kind:               kind,
			Resource:           resource,
			SubResource:        a.Subresource,
			RequestKind:        &kind,
			RequestResource:    &resource,
			RequestSubResource: a.Subresource,
			Name:               a.Name,
			Namespace:          req.Namespace(),
			Operation:          admissionv1.Operation(a.Operation),
			UserInfo:           user,
			Object:             runtime.RawExtension{Raw: rv.object},
			OldObject:          runtime.RawExtension{Raw: rv.oldObject},
			DryRun:             &dryRun,
			Options:            options,
		},
	}
}

// verify checks a response is an answer to this request and well-formed
// for the kind of webhook.
func verify(uid types.UID, mutating bool, r *admissionv1.AdmissionReview) error {
	if r.Response == nil {
		return errors.New("webhook response was absent")
	}
	if r.Response.UID != uid {
		return fmt.Errorf("expected response.uid=%q, got %q", uid, r.Response.UID)
	}
	want := admissionv1.SchemeGroupVersion.WithKind("AdmissionReview")
	if got := r.GroupVersionKind(); got != want {
		return fmt.Errorf("expected webhook response of %v, got %v", want, got)
	}
	resp := r.Response
	if !mutating {
		if len(resp.Patch) > 0 {
			return errors.New("validating webhook may not return response.patch")
		}
		if resp.PatchType != nil {
			return errors.New("validating webhook may not return response.patchType")
		}
		return nil
	}
	if len(resp.Patch) > 0 && resp.PatchType == nil {
		return errors.New("webhook returned response.patch but not response.patchType")
	}
	if len(resp.Patch) == 0 && resp.PatchType != nil {
		return errors.New("webhook returned response.patchType but not response.patch")
	}
	if resp.PatchType != nil && *resp.PatchType == "" {
		return fmt.Errorf("webhook returned invalid response.patchType of %q", *resp.PatchType)
	}
	return nil
}

// denied is the status a webhook's rejection becomes: its own status,
// with the message naming the webhook and a code of at least 400.
func denied(webhook string, result *metav1.Status) *apierrors.StatusError {
	st := metav1.Status{Status: metav1.StatusFailure}
	if result != nil {
		st = *result.DeepCopy()
	}
	if st.Code < http.StatusBadRequest {
		st.Code = http.StatusBadRequest
	}
	if st.Status == "" || st.Status == metav1.StatusSuccess {
		st.Status = metav1.StatusFailure
	}
	prefix := fmt.Sprintf("admission webhook %q denied the request", webhook)
	switch {
	case st.Message != "":
		st.Message = prefix + ": " + st.Message
	case st.Reason != "":
		st.Message = prefix + ": " + string(st.Reason)
	default:
		st.Message = prefix + " without explanation"
	}
	return &apierrors.StatusError{ErrStatus: st}
}

// responseError turns a non-2xx answer into a status: the webhook's own
// Status if it sent one, else a generic one for the code.
func responseError(resp *http.Response, body []byte) *apierrors.StatusError {
	var st metav1.Status
	if json.Unmarshal(body, &st) == nil && st.Kind == "Status" && st.Status == metav1.StatusFailure {
		if st.Code == 0 {
			st.Code = int32(resp.StatusCode)
		}
		return &apierrors.StatusError{ErrStatus: st}
	}
	message := "unknown"
	if mt, _, err := mime.ParseMediaType(resp.Header.Get("Content-Type")); err == nil && strings.HasPrefix(mt, "text/") {
		message = strings.TrimSpace(string(body))
	}
	return apierrors.NewGenericServerResponse(resp.StatusCode, http.MethodPost, schema.GroupResource{}, "", message, 0, true)
}
