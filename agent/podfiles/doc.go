// Package podfiles prepares, on the node, what a pod's containers need
// from the host before they can be created: the pod's volumes (emptyDir,
// configMap, secret, downwardAPI, projected, hostPath and persistent
// volume claims backed by hostPath or local volumes), each container's
// bind mounts, and each container's environment. Behaviour follows the
// kubelet's so that workloads written against Kubernetes see the same
// files, modes and variables.
//
// Nothing here keeps state in memory: everything a later sync needs
// (the current payload of a volume, when its service account token was
// issued) lives under the pod's directory, so the agent can restart and
// pick up where it left off.
package podfiles

import (
	"errors"
	"fmt"
	"strings"

	corev1 "k8s.io/api/core/v1"
)

// Reasons carried by Error. They are the kubelet's, so the runtime can
// copy them verbatim into container states and events.
const (
	// ReasonFailedMount is the event reason of a volume that could not
	// be set up.
	ReasonFailedMount = "FailedMount"
	// ReasonCreateContainerConfigError is the waiting reason of a
	// container whose environment or mounts could not be computed.
	ReasonCreateContainerConfigError = "CreateContainerConfigError"
)

// Error is a failure the runtime reports to the user: Reason is a kubelet
// reason (see the Reason constants) and Message reads like the kubelet's
// event or container state message.
type Error struct {
	Reason  string
	Message string
	// Volume is the pod volume that failed, for FailedMount errors.
	Volume string
	// Err is the underlying error, if any.
	Err error
}

func (e *Error) Error() string { return e.Message }
func (e *Error) Unwrap() error { return e.Err }

// mountError wraps a volume's setup failure as the kubelet words its
// FailedMount event.
func mountError(volume string, err error) *Error {
	return &Error{
		Reason:  ReasonFailedMount,
		Message: fmt.Sprintf("MountVolume.SetUp failed for volume %q : %v", volume, err),
		Volume:  volume,
		Err:     err,
	}
}

func configError(err error) *Error {
	var e *Error
	if errors.As(err, &e) {
		return e
	}
	return &Error{Reason: ReasonCreateContainerConfigError, Message: err.Error(), Err: err}
}

// aggregate joins several errors the way the kubelet's projected volume
// reports them: one error stands alone, several are bracketed.
func aggregate(errs []error) error {
	switch len(errs) {
	case 0:
		return nil
	case 1:
		return errs[0]
	}
	msgs := make([]string, len(errs))
	for i, err := range errs {
		msgs[i] = err.Error()
	}
	return fmt.Errorf("[%s]", strings.Join(msgs, ", "))
}

// Node is what the downward API and resourceFieldRef need to know about
// the node the pod runs on.
type Node struct {
	Name string
	// IP is the node's InternalIP, the pod's status.hostIP.
	IP          string
	Allocatable corev1.ResourceList
}
