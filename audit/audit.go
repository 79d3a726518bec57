// Package audit writes one JSON line per request, in kube-apiserver's
// audit.k8s.io/v1 Event format at the Metadata level: who did what to which
// object and how it ended. Request and response bodies are never recorded,
// so Secret contents cannot leak into the log.
package audit

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"sync"
	"time"
)

// Event is one audit record.
type Event struct {
	Kind                     string            `json:"kind"`
	APIVersion               string            `json:"apiVersion"`
	Level                    string            `json:"level"`
	AuditID                  string            `json:"auditID"`
	Stage                    string            `json:"stage"`
	RequestURI               string            `json:"requestURI"`
	Verb                     string            `json:"verb"`
	User                     UserInfo          `json:"user"`
	ImpersonatedUser         *UserInfo         `json:"impersonatedUser,omitempty"`
	SourceIPs                []string          `json:"sourceIPs,omitempty"`
	UserAgent                string            `json:"userAgent,omitempty"`
	ObjectRef                *ObjectRef        `json:"objectRef,omitempty"`
	ResponseStatus           *ResponseStatus   `json:"responseStatus,omitempty"`
	RequestReceivedTimestamp time.Time         `json:"requestReceivedTimestamp"`
	StageTimestamp           time.Time         `json:"stageTimestamp"`
	Annotations              map[string]string `json:"annotations,omitempty"`
}

// UserInfo is the authenticated (or impersonated) user.
type UserInfo struct {
	Username string              `json:"username"`
	UID      string              `json:"uid,omitempty"`
	Groups   []string            `json:"groups,omitempty"`
	Extra    map[string][]string `json:"extra,omitempty"`
}

// ObjectRef names the object a resource request concerns.
type ObjectRef struct {
	Resource    string `json:"resource,omitempty"`
	Namespace   string `json:"namespace,omitempty"`
	Name        string `json:"name,omitempty"`
	APIGroup    string `json:"apiGroup,omitempty"`
	APIVersion  string `json:"apiVersion,omitempty"`
	Subresource string `json:"subresource,omitempty"`
}

// ResponseStatus is the outcome: the HTTP code and, for errors, the reason.
type ResponseStatus struct {
	Code    int    `json:"code"`
	Status  string `json:"status,omitempty"`
	Reason  string `json:"reason,omitempty"`
	Message string `json:"message,omitempty"`
}

// Sink receives finished events.
type Sink interface {
	Log(e *Event)
}

// File appends events to a file. Writes are buffered and flushed at least
// once a second, so logging costs a request a mutex and a memcpy, not a
// write system call.
type File struct {
	mu   sync.Mutex
	f    io.WriteCloser
	w    *bufio.Writer
	err  error
	stop chan struct{}
	done chan struct{}
}

// OpenFile opens (creating, 0600) the log at path for appending.
func OpenFile(path string) (*File, error) {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return nil, fmt.Errorf("audit log: %w", err)
	}
	l := &File{f: f, w: bufio.NewWriterSize(f, 64<<10), stop: make(chan struct{}), done: make(chan struct{})}
	go l.flushLoop()
	return l, nil
}

// Log appends one event as a line.
func (l *File) Log(e *Event) {
	e.Kind, e.APIVersion = "Event", "audit.k8s.io/v1"
	if e.Level == "" {
		e.Level = "Metadata"
	}
	line, err := json.Marshal(e)
	if err != nil {
		return
	}
	line = append(line, '\n')
	l.mu.Lock()
	// Whole lines only reach the file, so a reader never sees half an
	// event.
	if l.w.Available() < len(line) {
		if err := l.w.Flush(); err != nil && l.err == nil {
			l.err = err
		}
	}
	if _, err := l.w.Write(line); err != nil && l.err == nil {
		l.err = err
	}
	l.mu.Unlock()
}

func (l *File) flushLoop() {
	defer close(l.done)
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		select {
		case <-l.stop:
			return
		case <-t.C:
			l.Flush() //nolint:errcheck
		}
	}
}

// Flush writes buffered events out.
func (l *File) Flush() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if err := l.w.Flush(); err != nil && l.err == nil {
		l.err = err
	}
	return l.err
}

// Close flushes and closes the file.
func (l *File) Close() error {
	close(l.stop)
	<-l.done
	err := l.Flush()
	if cerr := l.f.Close(); err == nil {
		err = cerr
	}
	return err
}
