package server

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/pgkube/pgkube/storage"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/apis/meta/internalversion"
	listvalidation "k8s.io/apimachinery/pkg/apis/meta/internalversion/validation"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

// tooLargeWait is how long a read at a future resourceVersion waits, as
// kube-apiserver does, before answering 504 with ResourceVersionTooLarge.
const tooLargeWait = 3 * time.Second

// continueToken is pgkube's opaque continue parameter: the snapshot's
// resourceVersion and the last key of the previous page.
type continueToken struct {
	RV        int64  `json:"rv"`
	Namespace string `json:"ns,omitempty"`
	Name      string `json:"n"`
}

func encodeContinue(t continueToken) string {
	b, _ := json.Marshal(t)
	return base64.RawURLEncoding.EncodeToString(b)
}

func decodeContinue(s string) (continueToken, error) {
	var t continueToken
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err == nil {
		err = json.Unmarshal(b, &t)
	}
	if err != nil || t.RV <= 0 || t.Name == "" {
		return t, badRequest("continue key is not valid: %q", s)
	}
	return t, nil
}

func parseRV(s string) (int64, error) {
	if s == "" {
		return 0, nil
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n < 0 {
		return 0, apierrors.NewBadRequest("invalid resource version: " + s)
	}
	return n, nil
}

// waitForRV makes a read at resourceVersion N wait until the cluster has
// reached N: never serve data older than what the client has seen.
func (s *Server) waitForRV(c *call, v string) error {
	n, err := parseRV(v)
	if err != nil || n == 0 {
		return err
	}
	return s.cfg.Store.WaitForRV(c.ctx, c.cluster, n, tooLargeWait)
}

// validateListQuery applies kube-apiserver's rules on how resourceVersion,
// resourceVersionMatch, continue and sendInitialEvents combine, for a list
// or a watch, with its wording: 422 Invalid on meta.k8s.io ListOptions.
func validateListQuery(q url.Values, watch bool) error {
	opts := internalversion.ListOptions{
		Watch: watch, ResourceVersion: q.Get("resourceVersion"), Continue: q.Get("continue"),
		ResourceVersionMatch: metav1.ResourceVersionMatch(q.Get("resourceVersionMatch")),
	}
	if v := q.Get("sendInitialEvents"); v != "" {
		b := v == "true"
		opts.SendInitialEvents = &b
	}
	if errs := listvalidation.ValidateListOptions(&opts, true); len(errs) > 0 {
		return apierrors.NewInvalid(schema.GroupKind{Group: metav1.GroupName, Kind: "ListOptions"}, "", errs)
	}
	return nil
}

// listOptions reads selectors, paging and resourceVersion semantics.
func (s *Server) listOptions(c *call) (storage.ListOptions, error) {
	q := c.r.URL.Query()
	if err := validateListQuery(q, c.ri.Verb == "watch"); err != nil {
		return storage.ListOptions{}, err
	}
	lo := storage.ListOptions{Resource: c.res.StorageKey(), Namespace: c.ri.Namespace}
	if v := q.Get("labelSelector"); v != "" {
		sel, err := labels.Parse(v)
		if err != nil {
			return lo, badRequest("unable to parse requirement: %v", err)
		}
		lo.Labels = sel
	}
	if v := q.Get("fieldSelector"); v != "" {
		sel, err := fields.ParseSelector(v)
		if err != nil {
			return lo, badRequest("invalid field selector: %v", err)
		}
		if err := s.checkFields(c, sel); err != nil {
			return lo, err
		}
		lo.Fields = sel
	}
	if v := q.Get("limit"); v != "" {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n < 0 {
			return lo, badRequest("limit must be a non-negative integer, got %q", v)
		}
		lo.Limit = n
	}
	rv, err := parseRV(q.Get("resourceVersion"))
	if err != nil {
		return lo, err
	}
	match := q.Get("resourceVersionMatch")
	if cont := q.Get("continue"); cont != "" {
		if q.Get("resourceVersion") != "" && q.Get("resourceVersion") != "0" {
			return lo, badRequest("specifying resource version is not allowed when using continue")
		}
		t, err := decodeContinue(cont)
		if err != nil {
			return lo, err
		}
		lo.AtRV, lo.AfterNamespace, lo.AfterName = t.RV, t.Namespace, t.Name
		return lo, nil
	}
	if rv > 0 {
		if err := s.cfg.Store.WaitForRV(c.ctx, c.cluster, rv, tooLargeWait); err != nil {
			return lo, err
		}
		// Exact, or a paged read at N with no match given, reads at N; a
		// plain read at N is "not older than N", served from the present.
		if match == string(metav1.ResourceVersionMatchExact) || (match == "" && lo.Limit > 0) {
			lo.AtRV = rv
		}
	}
	return lo, nil
}

// checkFields refuses field selectors on fields the kind does not index.
func (s *Server) checkFields(c *call, sel fields.Selector) error {
	var known map[string]string
	if c.res.Fields != nil {
		zero, err := s.cfg.Registry.NewObject(c.res)
		if err == nil {
			known = c.res.Fields(zero)
		}
	}
	for _, r := range sel.Requirements() {
		if r.Field == "metadata.name" || r.Field == "metadata.namespace" {
			continue
		}
		if _, ok := known[r.Field]; !ok {
			return badRequest("field label not supported: %s", r.Field)
		}
	}
	return nil
}

func (s *Server) list(c *call) error {
	lo, err := s.listOptions(c)
	if err != nil {
		return err
	}
	lo.CountRemaining = lo.Labels == nil && lo.Fields == nil
	// Plain JSON of objects stored as served is assembled from the stored
	// bytes as they stream in: a list of thousands decodes none of them.
	raw := c.out.media == mediaJSON && c.out.as == "" && c.res.FromStorage == nil
	var items bytes.Buffer
	if raw {
		lo.Visit = func(o *storage.Object) error {
			if items.Len() > 0 {
				items.WriteByte(',')
			}
			items.Write(o.Data)
			return nil
		}
	}
	page, err := s.cfg.Store.List(c.ctx, c.cluster, lo)
	if errors.Is(err, storage.ErrCompacted) && c.r.URL.Query().Get("continue") != "" {
		return s.expiredContinue(c, lo)
	}
	if err != nil {
		return err
	}
	lm := metav1.ListMeta{ResourceVersion: strconv.FormatInt(page.RV, 10)}
	if page.More {
		lm.Continue = encodeContinue(continueToken{RV: page.RV, Namespace: page.LastNamespace, Name: page.LastName})
		if lo.CountRemaining {
			n := page.Remaining
			lm.RemainingItemCount = &n
		}
	}
	if raw {
		return s.writeRawList(c, lm, items.Bytes())
	}
	objs := make([]runtime.Object, 0, len(page.Items))
	for _, it := range page.Items {
		obj, err := s.fromStorage(c.res, it.Data)
		if err != nil {
			return err
		}
		objs = append(objs, obj)
	}
	return s.respondList(c, objs, lm)
}

// expiredContinue answers a continue token whose snapshot was compacted with
// 410 Expired, offering a token that continues from the present, as upstream.
func (s *Server) expiredContinue(c *call, lo storage.ListOptions) error {
	cur, _, err := s.cfg.Store.CurrentRV(c.ctx, c.cluster)
	if err != nil {
		return err
	}
	e := apierrors.NewResourceExpired("The provided continue parameter is too old to display a consistent list result. " +
		"You can start a new list without the continue parameter, or use the continue token in this response to " +
		"retrieve the remainder of the results. Continuing with the provided token results in an inconsistent list - " +
		"objects that were created, modified, or deleted between the time the first chunk was returned and now may show up in the list.")
	st := e.ErrStatus
	st.ListMeta = metav1.ListMeta{Continue: encodeContinue(continueToken{RV: cur, Namespace: lo.AfterNamespace, Name: lo.AfterName})}
	return &apierrors.StatusError{ErrStatus: st}
}

// writeRawList wraps comma-joined stored objects in a list envelope.
func (s *Server) writeRawList(c *call, lm metav1.ListMeta, items []byte) error {
	head, err := json.Marshal(struct {
		Kind       string          `json:"kind"`
		APIVersion string          `json:"apiVersion"`
		Metadata   metav1.ListMeta `json:"metadata"`
	}{c.res.ListKind, c.res.GroupVersion().String(), lm})
	if err != nil {
		return err
	}
	head = append(head[:len(head)-1], `,"items":[`...)
	c.flushWarnings()
	h := c.w.Header()
	h.Set("Content-Type", mediaJSON)
	h.Set("Content-Length", strconv.Itoa(len(head)+len(items)+2))
	c.w.WriteHeader(http.StatusOK)
	for _, part := range [][]byte{head, items, []byte("]}")} {
		if _, err := c.w.Write(part); err != nil {
			return nil // the client went away
		}
	}
	return nil
}

// respondList answers with decoded objects in the negotiated form.
func (s *Server) respondList(c *call, objs []runtime.Object, lm metav1.ListMeta) error {
	var out runtime.Object
	switch c.out.as {
	case "Table":
		t, err := s.table(c, objs, lm)
		if err != nil {
			return err
		}
		out = t
	case "PartialObjectMetadata", "PartialObjectMetadataList":
		l := &metav1.PartialObjectMetadataList{ListMeta: lm}
		l.APIVersion, l.Kind = "meta.k8s.io/"+versionOr(c.out.version), "PartialObjectMetadataList"
		for _, o := range objs {
			l.Items = append(l.Items, *partialMeta(o, c.out.version))
		}
		out = l
	default:
		list, err := s.cfg.Registry.NewList(c.res)
		if err != nil {
			return err
		}
		if err := meta.SetList(list, objs); err != nil {
			return err
		}
		lmAcc, err := meta.ListAccessor(list)
		if err != nil {
			return err
		}
		lmAcc.SetResourceVersion(lm.ResourceVersion)
		lmAcc.SetContinue(lm.Continue)
		lmAcc.SetRemainingItemCount(lm.RemainingItemCount)
		setGVK(list, c.res.GroupVersion().WithKind(c.res.ListKind))
		out = list
	}
	body, err := s.codecs.encode(out, c.out.media)
	if err != nil {
		return err
	}
	c.flushWarnings()
	writeBytes(c.w, http.StatusOK, c.out.media, body)
	return nil
}
