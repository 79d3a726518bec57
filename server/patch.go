package server

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"

	"github.com/pgkube/pgkube/storage"
	jsonpatch "gopkg.in/evanphx/json-patch.v4"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/strategicpatch"
	"sigs.k8s.io/yaml"
)

// maxJSONPatchOps bounds the work one JSON patch can ask for.
const maxJSONPatchOps = 10000

func (s *Server) patch(c *call) error {
	if err := checkDryRun(c.r); err != nil {
		return err
	}
	mode, err := fieldValidation(c.r)
	if err != nil {
		return err
	}
	body, err := readBody(c.r)
	if err != nil {
		return err
	}
	pt := types.PatchType(contentType(c.r))
	switch pt {
	case types.JSONPatchType, types.MergePatchType, types.StrategicMergePatchType:
	case types.ApplyYAMLPatchType:
		return s.serverSideApply(c, body)
	default:
		return &apierrors.StatusError{ErrStatus: metav1.Status{
			Status: metav1.StatusFailure, Code: http.StatusUnsupportedMediaType, Reason: metav1.StatusReasonUnsupportedMediaType,
			Message: fmt.Sprintf("the body of the request was in an unknown format - accepted media types include: %s, %s, %s, %s",
				types.JSONPatchType, types.MergePatchType, types.StrategicMergePatchType, types.ApplyYAMLPatchType),
		}}
	}
	obj, stored, err := s.updateObject(c, c.ri.Namespace, c.ri.Name, func(cur runtime.Object) (runtime.Object, string, error) {
		obj, warn, err := s.applyPatch(c, pt, body, cur, mode)
		if err == nil {
			stripClusterMark(obj)
		}
		return obj, warn, err
	})
	if err != nil {
		return err
	}
	return s.respondWritten(c, http.StatusOK, obj, stored)
}

// applyPatch applies a patch of type pt to cur and decodes the result,
// strictly checking unknown fields per fieldValidation.
func (s *Server) applyPatch(c *call, pt types.PatchType, patch []byte, cur runtime.Object, mode string) (runtime.Object, string, error) {
	curJSON, err := json.Marshal(cur)
	if err != nil {
		return nil, "", err
	}
	var out []byte
	switch pt {
	case types.JSONPatchType:
		p, err := jsonpatch.DecodePatch(patch)
		if err != nil {
			return nil, "", badRequest("the JSON patch could not be decoded: %v", err)
		}
		if len(p) > maxJSONPatchOps {
			return nil, "", apierrors.NewRequestEntityTooLargeError(fmt.Sprintf("the JSON patch has %d operations, more than the %d allowed", len(p), maxJSONPatchOps))
		}
		out, err = p.Apply(curJSON)
		if err != nil {
			// Upstream names no object here, so kubectl says "The request is invalid".
			return nil, "", apierrors.NewGenericServerResponse(http.StatusUnprocessableEntity, "", schema.GroupResource{}, "", err.Error(), 0, false)
		}
	case types.MergePatchType:
		patch, err = patchAsJSON(patch)
		if err != nil {
			return nil, "", err
		}
		out, err = jsonpatch.MergePatch(curJSON, patch)
		if err != nil {
			return nil, "", badRequest("the merge patch could not be applied: %v", err)
		}
	case types.StrategicMergePatchType:
		patch, err = patchAsJSON(patch)
		if err != nil {
			return nil, "", err
		}
		schema, err := strategicpatch.NewPatchMetaFromStruct(cur)
		if err != nil {
			return nil, "", err
		}
		out, err = strategicpatch.StrategicMergePatchUsingLookupPatchMeta(curJSON, patch, schema)
		if err != nil {
			return nil, "", badRequest("the strategic merge patch could not be applied: %v", err)
		}
	}
	d, err := s.codecs.decode(out, mediaJSON, c.res.GVK())
	if err != nil {
		return nil, "", apierrors.NewGenericServerResponse(http.StatusUnprocessableEntity, "", c.gr(), c.ri.Name,
			fmt.Sprintf("the patched object is not a valid %s: %v", c.res.Kind, errMessage(err)), 0, false)
	}
	if err := c.fieldProblems(mode, d.warnings); err != nil {
		return nil, "", err
	}
	// The patch may name a resourceVersion: a precondition, as in an update.
	var probe struct {
		Metadata struct {
			ResourceVersion string `json:"resourceVersion"`
		} `json:"metadata"`
	}
	_ = json.Unmarshal(patch, &probe)
	m, _ := meta.Accessor(d.obj)
	curMeta, _ := meta.Accessor(cur)
	m.SetResourceVersion(curMeta.GetResourceVersion())
	return d.obj, probe.Metadata.ResourceVersion, nil
}

// patchAsJSON accepts merge patches written in YAML too, as kubectl may
// send them.
func patchAsJSON(p []byte) ([]byte, error) {
	var v map[string]any
	if err := json.Unmarshal(p, &v); err == nil {
		return p, nil
	}
	j, err := yaml.YAMLToJSON(p)
	if err != nil {
		return nil, badRequest("the patch is neither JSON nor YAML: %v", err)
	}
	if err := json.Unmarshal(j, &v); err != nil {
		return nil, badRequest("the patch must be a JSON object: %v", err)
	}
	return j, nil
}

func errMessage(err error) string {
	if se, ok := err.(*apierrors.StatusError); ok {
		return se.ErrStatus.Message
	}
	return err.Error()
}

// serverSideApply merges an apply configuration into the object, creating
// it when it does not exist yet, as kube-apiserver does.
func (s *Server) serverSideApply(c *call, body []byte) error {
	c.applied = true
	obj, stored, err := s.updateObject(c, c.ri.Namespace, c.ri.Name, func(cur runtime.Object) (runtime.Object, string, error) {
		out, err := s.applyConfiguration(c, body, cur)
		if err != nil {
			return nil, "", err
		}
		m, _ := meta.Accessor(out)
		curMeta, _ := meta.Accessor(cur)
		// A resourceVersion in the configuration is a precondition.
		rv := m.GetResourceVersion()
		if rv == curMeta.GetResourceVersion() {
			rv = ""
		}
		m.SetResourceVersion(curMeta.GetResourceVersion())
		return out, rv, nil
	})
	if errors.Is(err, storage.ErrNotFound) || apierrors.IsNotFound(err) {
		live, err := s.emptyObject(c.res)
		if err != nil {
			return err
		}
		lm, _ := meta.Accessor(live)
		lm.SetName(c.ri.Name)
		lm.SetNamespace(c.ri.Namespace)
		obj, err := s.applyConfiguration(c, body, live)
		if err != nil {
			return err
		}
		m, _ := meta.Accessor(obj)
		m.SetName(c.ri.Name)
		m.SetResourceVersion("")
		return s.createObject(c, obj, true)
	}
	if err != nil {
		return err
	}
	return s.respondWritten(c, http.StatusOK, obj, stored)
}
