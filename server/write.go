package server

import (
	"bytes"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/pgkube/pgkube/admission"
	"github.com/pgkube/pgkube/registry"
	"github.com/pgkube/pgkube/storage"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	apivalidation "k8s.io/apimachinery/pkg/api/validation"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	utilrand "k8s.io/apimachinery/pkg/util/rand"
	"k8s.io/apimachinery/pkg/util/uuid"
	"k8s.io/apimachinery/pkg/util/validation/field"
)

// generateNameAttempts: like kube-apiserver, a create with generateName
// retries a few times when the random suffix collides.
const generateNameAttempts = 8

func (s *Server) create(c *call) error {
	if err := checkDryRun(c.r); err != nil {
		return err
	}
	obj, err := s.decodeBody(c, c.res.GVK())
	if err != nil {
		return err
	}
	return s.createObject(c, obj, false)
}

// createObject creates a decoded object; applied says its managedFields
// were already set by a server-side apply.
func (s *Server) createObject(c *call, obj runtime.Object, applied bool) error {
	m, _ := meta.Accessor(obj)
	if c.res.Namespaced {
		switch {
		case m.GetNamespace() == "":
			m.SetNamespace(c.ri.Namespace)
		case c.ri.Namespace != "" && m.GetNamespace() != c.ri.Namespace:
			return badRequest("the namespace of the provided object does not match the namespace sent on the request")
		}
		if m.GetNamespace() == "" {
			return badRequest("the namespace of the object is required: create it under /namespaces/NAMESPACE/")
		}
	} else {
		m.SetNamespace("")
	}
	if m.GetResourceVersion() != "" {
		return badRequest("resourceVersion should not be set on objects to be created")
	}
	// Server-owned metadata: whatever the client sent is replaced.
	m.SetUID(types.UID(uuid.NewUUID()))
	m.SetCreationTimestamp(metav1.NewTime(time.Now().Truncate(time.Second)))
	m.SetDeletionTimestamp(nil)
	m.SetDeletionGracePeriodSeconds(nil)
	m.SetGeneration(0)
	if c.res.Generation {
		m.SetGeneration(1)
	}
	if c.res.Status && !c.res.KeepStatusOnCreate {
		registry.ClearStatus(obj)
	}
	if c.res.Default != nil {
		c.res.Default(obj)
	}
	if c.res.Prepare != nil {
		c.res.Prepare(obj, nil, "")
	}
	if !applied {
		live, err := s.emptyObject(c.res)
		if err != nil {
			return err
		}
		if obj, err = s.trackUpdate(c, live, obj); err != nil {
			return err
		}
		m, _ = meta.Accessor(obj)
	}
	generated := m.GetName() == "" && m.GetGenerateName() != ""
	if generated {
		m.SetName(m.GetGenerateName() + utilrand.String(5))
	}
	if err := s.mutate(c, admission.Create, obj, nil, m.GetNamespace(), m.GetName()); err != nil {
		return err
	}
	// Again: what admission added (a service account's token volume) gets
	// its defaults too, as upstream's decode from storage would.
	if c.res.Default != nil {
		c.res.Default(obj)
	}
	if err := s.validate(c, obj, nil); err != nil {
		return err
	}
	if err := s.admit(c, admission.Create, obj, nil, m.GetNamespace(), m.GetName()); err != nil {
		return err
	}
	// Only the write is retried under another generated name: admission
	// (a quota charge) has been done once and stays done.
	for attempt := 0; ; attempt++ {
		if generated && attempt > 0 {
			m.SetName(m.GetGenerateName() + utilrand.String(5))
		}
		stored, err := s.store(c, obj, nil, storage.Create, 0)
		if generated && errors.Is(err, storage.ErrExists) && attempt < generateNameAttempts {
			continue
		}
		if err != nil {
			return toStatus(err, c.gr(), m.GetName())
		}
		if stored.Data == nil {
			return s.respond(c, http.StatusCreated, obj) // dry run
		}
		return s.respondStored(c, http.StatusCreated, stored)
	}
}

// store writes obj (old is the version it replaces, for allocations and
// conflicts). Under dryRun it stores nothing and returns an empty Object.
func (s *Server) store(c *call, obj, old runtime.Object, op storage.Op, expectRV int64) (storage.Object, error) {
	if isDryRun(c.r) {
		return storage.Object{}, nil
	}
	release, err := s.beforeWrite(c, obj, old, op)
	if err != nil {
		return storage.Object{}, err
	}
	stored, err := s.write(c, obj, op, expectRV, s.encodeForStorage(c.res, obj))
	release(err == nil)
	return stored, err
}

// beforeWrite runs the resource's write hook, if it has one; the returned
// function must be told whether the write succeeded.
func (s *Server) beforeWrite(c *call, obj, old runtime.Object, op storage.Op) (func(ok bool), error) {
	hook := s.cfg.WriteHooks[c.gr()]
	if hook == nil {
		return func(bool) {}, nil
	}
	return hook.BeforeWrite(c.ctx, c.cluster, obj, old, op == storage.Delete)
}

// write hands one encoded object to storage.
func (s *Server) write(c *call, obj runtime.Object, op storage.Op, expectRV int64, enc func(int64) ([]byte, error)) (storage.Object, error) {
	m, _ := meta.Accessor(obj)
	return s.cfg.Store.Write(c.ctx, c.cluster, storage.Write{
		Op: op, Key: c.key(m.GetNamespace(), m.GetName()), ExpectRV: expectRV,
		Labels: m.GetLabels(), Fields: fieldsOf(c.res, obj), Encode: enc,
	})
}

// validate checks metadata, the kind's name rule and its own rules.
func (s *Server) validate(c *call, obj, old runtime.Object) error {
	m, _ := meta.Accessor(obj)
	var errs field.ErrorList
	if old == nil {
		errs = apivalidation.ValidateObjectMetaAccessor(m, c.res.Namespaced, c.res.NameRule, field.NewPath("metadata"))
	} else {
		om, _ := meta.Accessor(old)
		errs = apivalidation.ValidateObjectMetaAccessor(m, c.res.Namespaced, c.res.NameRule, field.NewPath("metadata"))
		errs = append(errs, apivalidation.ValidateObjectMetaAccessorUpdate(m, om, field.NewPath("metadata"))...)
		errs = append(errs, registry.CheckImmutable(c.res, obj, old)...)
	}
	if c.res.Validate != nil {
		errs = append(errs, c.res.Validate(obj, old)...)
	}
	if len(errs) > 0 {
		return apierrors.NewInvalid(c.res.GVK().GroupKind(), m.GetName(), errs)
	}
	return nil
}

// mutation changes the current object into the new one. It returns the new
// object and the resourceVersion the client based it on ("" if none).
type mutation func(cur runtime.Object) (runtime.Object, string, error)

// update is the one read-modify-write loop behind PUT, PATCH, status,
// scale, binding, finalize and finalizer-driven deletes: read the current
// version, apply the change, check, write conditioned on the version read.
// A client-given resourceVersion that is stale is a 409; a race with another
// writer when the client gave none is retried.
func (s *Server) updateObject(c *call, namespace, name string, change mutation) (runtime.Object, storage.Object, error) {
	for attempt := 0; ; attempt++ {
		// The first try may start from this process's last write of the
		// object; any doubt about that guess is settled by a real read.
		cur, stored, guessed, err := s.loadForUpdate(c, namespace, name, attempt == 0)
		if err != nil {
			return nil, storage.Object{}, err
		}
		obj, clientRV, err := change(cur.DeepCopyObject())
		if err != nil {
			return nil, storage.Object{}, err
		}
		if clientRV != "" && clientRV != strconv.FormatInt(stored.RV, 10) {
			if guessed {
				continue
			}
			return nil, storage.Object{}, apierrors.NewConflict(c.gr(), name, errors.New(registryConflictMsg))
		}
		if err := s.prepareUpdate(c, obj, cur); err != nil {
			return nil, storage.Object{}, err
		}
		if !c.applied && !c.untracked {
			if obj, err = s.trackUpdate(c, cur, obj); err != nil {
				return nil, storage.Object{}, err
			}
		}
		m, _ := meta.Accessor(obj)
		if err := s.mutate(c, admission.Update, obj, cur, namespace, name); err != nil {
			return nil, storage.Object{}, err
		}
		if c.res.Default != nil {
			c.res.Default(obj)
		}
		if err := s.validate(c, obj, cur); err != nil {
			return nil, storage.Object{}, err
		}
		if err := s.admit(c, admission.Update, obj, cur, namespace, name); err != nil {
			return nil, storage.Object{}, err
		}
		op := storage.Update
		if g := m.GetDeletionGracePeriodSeconds(); m.GetDeletionTimestamp() != nil && len(m.GetFinalizers()) == 0 &&
			!c.res.HoldsDeletion(obj) && (g == nil || *g == 0) {
			// The last finalizer is gone: deletion completes, unless a
			// grace period runs (a pod's, which its node ends).
			op = storage.Delete
		}
		if isDryRun(c.r) {
			return obj, storage.Object{}, nil
		}
		// Write hooks may fill fields (a Service's IPs): before encoding.
		release, err := s.beforeWrite(c, obj, cur, op)
		if err != nil {
			return nil, storage.Object{}, err
		}
		// An update that changes nothing keeps its resourceVersion, as
		// upstream: no write, no watch event.
		enc := s.encodeForStorage(c.res, obj)
		if same, err := enc(stored.RV); op == storage.Update && err == nil && bytes.Equal(same, stored.Data) {
			release(true)
			if guessed {
				continue // "unchanged" must be judged against the stored row
			}
			return cur, stored, nil
		}
		written, err := s.write(c, obj, op, stored.RV, enc)
		release(err == nil)
		if (errors.Is(err, storage.ErrConflict) || errors.Is(err, storage.ErrNotFound)) && guessed {
			continue
		}
		if errors.Is(err, storage.ErrConflict) && clientRV == "" && attempt < 16 {
			continue
		}
		if errors.Is(err, storage.ErrNotFound) {
			return nil, storage.Object{}, apierrors.NewNotFound(c.gr(), name)
		}
		if err != nil {
			return nil, storage.Object{}, err
		}
		return obj, written, nil
	}
}

// loadForUpdate reads the object to update; with guess, it may instead
// take this process's last write of it (guessed), to be confirmed by the
// write's resourceVersion condition.
func (s *Server) loadForUpdate(c *call, namespace, name string, guess bool) (runtime.Object, storage.Object, bool, error) {
	if guess && !isDryRun(c.r) {
		if o, ok := s.cfg.Store.Recent(c.cluster, c.key(namespace, name)); ok {
			if obj, err := s.fromStorage(c.res, o.Data); err == nil {
				return obj, o, true, nil
			}
		}
	}
	obj, stored, err := s.load(c, namespace, name)
	return obj, stored, false, err
}

// prepareUpdate carries server-owned fields over from the current version
// and splits spec from status as the subresource demands.
func (s *Server) prepareUpdate(c *call, obj, cur runtime.Object) error {
	m, _ := meta.Accessor(obj)
	om, _ := meta.Accessor(cur)
	if m.GetName() != om.GetName() {
		return badRequest("the name of the object (%s) does not match the name on the URL (%s)", m.GetName(), om.GetName())
	}
	if c.res.Namespaced && m.GetNamespace() != "" && m.GetNamespace() != om.GetNamespace() {
		return badRequest("the namespace of the provided object does not match the namespace sent on the request")
	}
	if uid := m.GetUID(); uid != "" && uid != om.GetUID() {
		// A body naming another incarnation of the object is a failed
		// precondition, as upstream treats it.
		return apierrors.NewConflict(c.gr(), om.GetName(),
			fmt.Errorf("Precondition failed: UID in precondition: %v, UID in object meta: %v", uid, om.GetUID()))
	}
	m.SetNamespace(om.GetNamespace())
	m.SetUID(om.GetUID())
	m.SetCreationTimestamp(om.GetCreationTimestamp())
	m.SetDeletionTimestamp(om.GetDeletionTimestamp())
	m.SetDeletionGracePeriodSeconds(om.GetDeletionGracePeriodSeconds())
	m.SetGeneration(om.GetGeneration())
	m.SetResourceVersion(om.GetResourceVersion())
	if c.res.Status {
		if c.ri.Subresource == "status" {
			registry.CopySpec(obj, cur)
			if c.res.CRD != "" {
				// A custom resource's status write changes only its
				// status, as upstream; built-in kinds' status writes may
				// also change metadata, but for what their kind's
				// Prepare resets (a Deployment's labels, a Pod's owners).
				m.SetLabels(om.GetLabels())
				m.SetAnnotations(om.GetAnnotations())
				m.SetFinalizers(om.GetFinalizers())
				m.SetOwnerReferences(om.GetOwnerReferences())
			}
		} else if c.ri.Subresource == "" {
			registry.CopyStatus(obj, cur)
		}
	}
	if c.res.Default != nil {
		c.res.Default(obj)
	}
	if c.res.Prepare != nil {
		c.res.Prepare(obj, cur, c.ri.Subresource)
	}
	if c.res.Generation && registry.SpecChanged(obj, cur) {
		m.SetGeneration(om.GetGeneration() + 1)
	}
	return nil
}

func (s *Server) update(c *call) error {
	if err := checkDryRun(c.r); err != nil {
		return err
	}
	body, err := s.decodeBody(c, c.res.GVK())
	if err != nil {
		return err
	}
	bm, _ := meta.Accessor(body)
	if bm.GetName() == "" {
		bm.SetName(c.ri.Name)
	}
	if bm.GetName() != c.ri.Name {
		return badRequest("the name of the object (%s) does not match the name on the URL (%s)", bm.GetName(), c.ri.Name)
	}
	obj, stored, err := s.updateObject(c, c.ri.Namespace, c.ri.Name, func(cur runtime.Object) (runtime.Object, string, error) {
		next := body.DeepCopyObject()
		nm, _ := meta.Accessor(next)
		return next, nm.GetResourceVersion(), nil
	})
	if err != nil {
		return err
	}
	return s.respondWritten(c, http.StatusOK, obj, stored)
}

// respondWritten answers a write: the stored bytes, or under dryRun the
// object as it would have been stored.
func (s *Server) respondWritten(c *call, code int, obj runtime.Object, stored storage.Object) error {
	if stored.Data == nil || stored.Deleted {
		return s.respond(c, code, obj)
	}
	return s.respondStored(c, code, stored)
}
