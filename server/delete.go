package server

import (
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"time"

	"github.com/pgkube/pgkube/admission"
	"github.com/pgkube/pgkube/registry"
	"github.com/pgkube/pgkube/storage"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/validation/field"
)

// deleteOptions reads DeleteOptions from the body (any media type) or the
// query, as kube-apiserver accepts both.
func (s *Server) deleteOptions(c *call) (*metav1.DeleteOptions, error) {
	opts := &metav1.DeleteOptions{}
	body, err := readBody(c.r)
	if err != nil {
		return nil, err
	}
	if len(body) > 0 {
		d, err := s.codecs.decode(body, contentType(c.r), schema.GroupVersionKind{Version: "v1", Kind: "DeleteOptions"})
		if err != nil {
			// Older clients send meta.k8s.io/v1 or a group version; accept them.
			obj, _, err2 := s.codecs.factory.UniversalDeserializer().Decode(body, nil, &metav1.DeleteOptions{})
			if err2 != nil {
				return nil, err
			}
			d.obj = obj
		}
		opts = d.obj.(*metav1.DeleteOptions)
	}
	q := c.r.URL.Query()
	if v := q.Get("gracePeriodSeconds"); v != "" {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			return nil, badRequest("gracePeriodSeconds must be an integer, got %q", v)
		}
		opts.GracePeriodSeconds = &n
	}
	if v := q.Get("propagationPolicy"); v != "" {
		p := metav1.DeletionPropagation(v)
		opts.PropagationPolicy = &p
	}
	if v := q.Get("orphanDependents"); v != "" {
		b := isTrue(v)
		opts.OrphanDependents = &b
	}
	if opts.PropagationPolicy != nil && opts.OrphanDependents != nil {
		return nil, apierrors.NewInvalid(schema.GroupKind{Kind: "DeleteOptions"}, "", field.ErrorList{field.Invalid(
			field.NewPath("propagationPolicy"), *opts.PropagationPolicy, "orphanDependents and deletionPropagation cannot be both set")})
	}
	if opts.PropagationPolicy != nil {
		switch *opts.PropagationPolicy {
		case metav1.DeletePropagationBackground, metav1.DeletePropagationForeground, metav1.DeletePropagationOrphan:
		default:
			return nil, apierrors.NewInvalid(schema.GroupKind{Kind: "DeleteOptions"}, "", nil)
		}
	}
	if opts.GracePeriodSeconds != nil && *opts.GracePeriodSeconds < 0 {
		zero := int64(0)
		opts.GracePeriodSeconds = &zero
	}
	opts.DryRun = append(opts.DryRun, q["dryRun"]...)
	for _, v := range opts.DryRun {
		if v != "All" {
			return nil, badRequest("Invalid dry run value: %q. Valid values are: All", v)
		}
	}
	return opts, nil
}

func (s *Server) delete(c *call) error {
	opts, err := s.deleteOptions(c)
	if err != nil {
		return err
	}
	if c.res.OrphanWarning != "" && opts.PropagationPolicy == nil && opts.OrphanDependents == nil {
		c.warnings = append(c.warnings, c.res.OrphanWarning)
	}
	if len(opts.DryRun) > 0 {
		c.r.URL.RawQuery += "&dryRun=All"
	}
	obj, gone, err := s.deleteOne(c, c.ri.Namespace, c.ri.Name, opts)
	if err != nil {
		return err
	}
	if gone && c.res.GracefulDelete == nil {
		// Immediate deletes answer with a success Status naming the object.
		m, _ := meta.Accessor(obj)
		st := metav1.Status{Status: metav1.StatusSuccess, Details: &metav1.StatusDetails{
			Name: m.GetName(), Group: c.res.Group, Kind: c.res.Resource, UID: m.GetUID()}}
		st.Kind, st.APIVersion = "Status", "v1"
		writeJSON(c.w, http.StatusOK, &st)
		return nil
	}
	return s.respond(c, http.StatusOK, obj)
}

// deleteOne deletes or, when finalizers or a grace period hold the object,
// marks it. gone reports whether the object is removed.
func (s *Server) deleteOne(c *call, namespace, name string, opts *metav1.DeleteOptions) (runtime.Object, bool, error) {
	for attempt := 0; ; attempt++ {
		cur, stored, err := s.load(c, namespace, name)
		if err != nil {
			return nil, false, err
		}
		m, _ := meta.Accessor(cur)
		if p := opts.Preconditions; p != nil {
			if p.UID != nil && *p.UID != m.GetUID() {
				return nil, false, apierrors.NewConflict(c.gr(), name,
					fmt.Errorf("Precondition failed: UID in precondition: %v, UID in object meta: %v", *p.UID, m.GetUID()))
			}
			if p.ResourceVersion != nil && *p.ResourceVersion != m.GetResourceVersion() {
				return nil, false, apierrors.NewConflict(c.gr(), name,
					fmt.Errorf("Precondition failed: ResourceVersion in precondition: %v, ResourceVersion in object meta: %v",
						*p.ResourceVersion, m.GetResourceVersion()))
			}
		}
		if err := s.admit(c, admission.Delete, nil, cur, namespace, name); err != nil {
			return nil, false, err
		}
		next := cur.DeepCopyObject()
		nm, _ := meta.Accessor(next)
		graceful, seconds := false, int64(0)
		if c.res.GracefulDelete != nil {
			graceful, seconds = c.res.GracefulDelete(cur, opts.GracePeriodSeconds)
		}
		finalizers, changed := gcFinalizers(c.res.GC, nm.GetFinalizers(), opts)
		if len(finalizers) > 0 || graceful || c.res.HoldsDeletion(cur) {
			if nm.GetDeletionTimestamp() != nil && !graceful {
				if !changed {
					return cur, false, nil // already being deleted
				}
				// Being deleted already: a new policy still changes what
				// the garbage collector does, as upstream.
				nm.SetFinalizers(finalizers)
				written, err := s.store(c, next, cur, storage.Update, stored.RV)
				if errors.Is(err, storage.ErrConflict) && attempt < 16 {
					continue
				}
				if err != nil || written.Data == nil {
					return next, false, err
				}
				obj, err := s.fromStorage(c.res, written.Data)
				return obj, false, err
			}
			now := metav1.NewTime(time.Now().Truncate(time.Second))
			if graceful {
				t := metav1.NewTime(now.Add(time.Duration(seconds) * time.Second))
				if old := nm.GetDeletionTimestamp(); old != nil && old.Before(&t) {
					t = *old
				}
				nm.SetDeletionTimestamp(&t)
				nm.SetDeletionGracePeriodSeconds(&seconds)
			} else {
				nm.SetDeletionTimestamp(&now)
				zero := int64(0)
				nm.SetDeletionGracePeriodSeconds(&zero)
			}
			nm.SetFinalizers(finalizers)
			if c.res.Deleting != nil {
				c.res.Deleting(next)
			}
			if m.GetGeneration() > 0 {
				nm.SetGeneration(m.GetGeneration() + 1)
			}
			written, err := s.store(c, next, cur, storage.Update, stored.RV)
			if errors.Is(err, storage.ErrConflict) && attempt < 16 {
				continue
			}
			if err != nil {
				return nil, false, err
			}
			if written.Data == nil {
				return next, false, nil
			}
			obj, err := s.fromStorage(c.res, written.Data)
			return obj, false, err
		}
		if nm.GetDeletionTimestamp() == nil {
			now := metav1.NewTime(time.Now().Truncate(time.Second))
			nm.SetDeletionTimestamp(&now)
			zero := int64(0)
			nm.SetDeletionGracePeriodSeconds(&zero)
		}
		_, err = s.store(c, next, cur, storage.Delete, stored.RV)
		if errors.Is(err, storage.ErrConflict) && attempt < 16 {
			continue
		}
		if err != nil {
			return nil, false, err
		}
		return next, true, nil
	}
}

// gcFinalizers is upstream's choice of the garbage collector's finalizers
// for a delete: the request's policy replaces whichever of the two the
// object had; without one, a finalizer already there stands; without that,
// the kind's default. changed tells whether the list differs.
func gcFinalizers(policy registry.GCPolicy, finalizers []string, opts *metav1.DeleteOptions) (out []string, changed bool) {
	if policy == registry.NoGarbageCollection {
		return finalizers, false
	}
	orphan, foreground := policy == registry.OrphanDependents, false
	had := ""
	for _, f := range finalizers {
		if f == metav1.FinalizerOrphanDependents || f == metav1.FinalizerDeleteDependents {
			if had == "" {
				had = f
			}
			continue
		}
		out = append(out, f)
	}
	switch {
	case opts.OrphanDependents != nil:
		orphan, foreground = *opts.OrphanDependents, false
	case opts.PropagationPolicy != nil:
		orphan = *opts.PropagationPolicy == metav1.DeletePropagationOrphan
		foreground = *opts.PropagationPolicy == metav1.DeletePropagationForeground
	case had != "":
		orphan, foreground = had == metav1.FinalizerOrphanDependents, had == metav1.FinalizerDeleteDependents
	}
	if orphan {
		out = append(out, metav1.FinalizerOrphanDependents)
	}
	if foreground {
		out = append(out, metav1.FinalizerDeleteDependents)
	}
	return out, !sameSet(out, finalizers)
}

func sameSet(a, b []string) bool {
	for _, x := range a {
		if !slices.Contains(b, x) {
			return false
		}
	}
	for _, x := range b {
		if !slices.Contains(a, x) {
			return false
		}
	}
	return true
}

func (s *Server) deleteCollection(c *call) error {
	opts, err := s.deleteOptions(c)
	if err != nil {
		return err
	}
	lo, err := s.listOptions(c)
	if err != nil {
		return err
	}
	lo.Limit = 0
	page, err := s.cfg.Store.List(c.ctx, c.cluster, lo)
	if err != nil {
		return err
	}
	var deleted []runtime.Object
	for _, item := range page.Items {
		obj, _, err := s.deleteOne(c, item.Namespace, item.Name, opts)
		if apierrors.IsNotFound(err) || errors.Is(err, storage.ErrNotFound) {
			continue
		}
		if err != nil {
			return err
		}
		deleted = append(deleted, obj)
	}
	return s.respondList(c, deleted, metav1.ListMeta{})
}
